"""Faults with real calls in flight: a node killed, work lost from Redis. Every call must end in
exactly one final status, and the carrier must never see a second INVITE for an attempt."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.cli import carrier_trunk
from tests.integration.conftest import FINAL, call_body, wait_final
from tests.integration.sipp import REPO, Carrier
from tests.integration.test_farm import _wait_state

Db = psycopg.Connection[dict[str, Any]]
STATE = Path(os.environ.get("SESPCL_STATE_DIR", REPO / ".stack"))


def _stack_env() -> dict[str, str]:
    env = dict(os.environ)
    for line in (STATE / "secrets.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


@pytest.fixture()
def kill_carrier() -> Iterator[Carrier]:
    with carrier_trunk("t-kill", "127.0.30.5", "answer") as carrier:
        yield carrier


async def test_node_killed_mid_batch(api: httpx.AsyncClient, db: Db, kill_carrier: Carrier) -> None:
    text = "A long enough notice that calls are still up when their node is killed, one two three."
    created = await asyncio.gather(
        *(
            api.post("/v1/calls", json=call_body(to=f"+1415555{2000 + i:04d}", text=text, trunk="t-kill"))
            for i in range(30)
        )
    )
    ids = [r.json()["id"] for r in created]

    def live_on(node: str) -> int:
        row = db.execute(
            "SELECT count(*) AS n FROM call_attempts "
            "WHERE node = %s AND ended_at IS NULL AND call_id = ANY(%s)",
            (node, ids),
        ).fetchone()
        return int(row["n"]) if row else 0

    deadline = time.monotonic() + 30
    while live_on("n2") < 5:
        assert time.monotonic() < deadline, "calls never reached node n2"
        await asyncio.sleep(0.1)
    pid = int((STATE / "asterisk-n2.pid").read_text().strip())
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        finals = [await wait_final(api, i, timeout=90) for i in ids]
        elapsed = time.monotonic() - killed_at
        assert all(c["status"] in FINAL for c in finals)
        on_dead = [c for c in finals if c["attempts"] and c["attempts"][-1]["node"] == "n2"]
        assert on_dead, "some calls were on the killed node"
        lost = [c for c in on_dead if c["status"] == "failed" and "lost" in (c["status_reason"] or "")]
        assert lost, "the killed node's live calls end failed, with the reason"
        assert elapsed < 60, f"the dead node's calls took {elapsed:.0f} s to settle"
        # never twice: one INVITE per attempt at the carrier, whatever happened to the node
        attempts = sum(len(c["attempts"]) for c in finals)
        assert len(kill_carrier.invites()) <= attempts
        for call in finals:
            assert len([a for a in call["attempts"] if a["status"] not in FINAL]) == 0
    finally:
        subprocess.run(
            ["bash", str(REPO / "scripts/asterisk-node.sh"), "start", "n2", "127.0.10.2", "15000", "19999"],
            env=_stack_env(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        await _wait_state("n2", "up", within_s=30)


async def test_lost_render_job_is_found_again(api: httpx.AsyncClient, db: Db) -> None:
    """As if Redis were flushed right after the call was accepted: its prompt is pending in
    PostgreSQL and no job exists. The sweeper finds it and the call still completes."""
    from orchestrator.domain.audio import SpeechRequest

    text = f"Nobody queued this render {uuid.uuid4().hex[:6]}."
    request = SpeechRequest(text=text, voice="en-us")
    db.execute(
        "INSERT INTO audio_assets (hash, engine, voice, text, created_at) "
        "VALUES (%s, %s, %s, %s, now() - interval '1 minute')",
        (request.key(), request.engine, request.voice, text),
    )
    created = await api.post("/v1/calls", json=call_body(text=text, tts={"text": text, "voice": "en-us"}))
    call = await wait_final(api, created.json()["id"], timeout=60)
    assert call["status"] == "completed"
    asset = db.execute(
        "SELECT status, render_count FROM audio_assets WHERE hash = %s", (request.key(),)
    ).fetchone()
    assert asset == {"status": "ready", "render_count": 1}


@pytest.fixture()
def traced_trunk() -> Iterator[Carrier]:
    with carrier_trunk("t-disp", "127.0.30.6", "answer") as carrier:
        yield carrier


def _dispatcher_pid() -> int:
    for pid in subprocess.run(
        ["pgrep", "-f", "bin/sespcl dispatcher"], capture_output=True, text=True
    ).stdout.split():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"python" in cmdline[0]:
            return int(pid)
    raise AssertionError("no dispatcher process")


async def _submit(api: httpx.AsyncClient, count: int, trunk: str, text: str, first: int) -> list[str]:
    created = await asyncio.gather(
        *(
            api.post("/v1/calls", json=call_body(to=f"+1415555{first + i:04d}", text=text, trunk=trunk))
            for i in range(count)
        )
    )
    assert all(r.status_code == 202 for r in created)
    return [r.json()["id"] for r in created]


def _report(finals: list[dict[str, Any]], carrier: Carrier) -> dict[str, Any]:
    """What every fault test reports: the issue's four figures."""
    statuses: dict[str, int] = {}
    for call in finals:
        statuses[call["status"]] = statuses.get(call["status"], 0) + 1
    per_attempt: dict[str, int] = {}
    for invite in carrier.invites():
        per_attempt[invite.call_id] = per_attempt.get(invite.call_id, 0) + 1
    return {
        "accepted": len(finals),
        "final_statuses": statuses,
        "invites_per_attempt_max": max(per_attempt.values(), default=0),
        "invites": len(carrier.invites()),
        "attempts": sum(len(c["attempts"]) for c in finals),
        "non_final": sum(1 for c in finals if c["status"] not in FINAL),
    }


async def test_dispatcher_killed_mid_batch(api: httpx.AsyncClient, db: Db, traced_trunk: Carrier) -> None:
    text = "This notice is long enough that calls are still up when the dispatcher is killed."
    ids = await _submit(api, 30, "t-disp", text, 3000)
    deadline = time.monotonic() + 30
    while True:
        row = db.execute("SELECT count(*) AS n FROM call_attempts WHERE call_id = ANY(%s)", (ids,)).fetchone()
        if row and row["n"] >= 10:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    os.kill(_dispatcher_pid(), signal.SIGKILL)  # the supervisor starts a new one within a second
    finals = [await wait_final(api, i, timeout=120) for i in ids]
    report = _report(finals, traced_trunk)
    print("fault report (dispatcher SIGKILL):", report)
    assert report["non_final"] == 0
    # SIPp answered every call: the new dispatcher adopts the attempts, reads the channels' state
    # from the nodes, and follows each call to its real outcome.
    assert report["final_statuses"] == {"completed": 30}
    assert all(len(c["attempts"]) == 1 for c in finals), "no call is dialed twice"
    assert report["invites_per_attempt_max"] == 1 and report["invites"] == report["attempts"] == 30


async def test_two_dispatchers_never_share_a_call(
    api: httpx.AsyncClient, db: Db, traced_trunk: Carrier
) -> None:
    second = subprocess.Popen(
        [str(REPO / ".venv/bin/sespcl"), "dispatcher"],
        env=_stack_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(3)  # logged in to the nodes
        ids = await _submit(api, 60, "t-disp", "Two dispatchers.", 4000)
        finals = [await wait_final(api, i, timeout=120) for i in ids]
    finally:
        second.terminate()
        second.wait(timeout=30)
    report = _report(finals, traced_trunk)
    print("fault report (two dispatchers):", report)
    assert report["non_final"] == 0 and report["final_statuses"] == {"completed": 60}
    assert all(len(c["attempts"]) == 1 for c in finals)
    assert report["invites_per_attempt_max"] == 1 and report["invites"] == 60
    owners = db.execute(
        "SELECT count(DISTINCT owner) AS n FROM call_attempts WHERE call_id = ANY(%s)", (ids,)
    ).fetchone()
    assert owners is not None and owners["n"] == 2, "both dispatchers took calls: the test exercised sharing"
    hangups = db.execute(
        "SELECT attempt_id, count(*) AS n FROM call_events WHERE call_id = ANY(%s) AND type = 'ami.Hangup' "
        "GROUP BY attempt_id",
        (ids,),
    ).fetchall()
    assert len(hangups) == 60 and all(h["n"] == 1 for h in hangups), "each event recorded once"


def _worker_pids() -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "bin/sespcl worker"], capture_output=True, text=True
    ).stdout.split()
    return [int(p) for p in found if b"python" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]]


def _signal_workers(sig: signal.Signals) -> None:
    for pid in _worker_pids():
        os.kill(pid, sig)


async def test_redis_flushed_mid_batch(api: httpx.AsyncClient, db: Db, traced_trunk: Carrier) -> None:
    """Workers held while Redis is flushed, twice: once with the prompt's render job waiting,
    once with event batches waiting. PostgreSQL keeps what must happen, the sweepers send the
    work again, and nothing is lost or doubled."""
    env = _stack_env()

    def flush() -> None:
        subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "FLUSHALL"], check=True, capture_output=True)

    text = f"Flush test {uuid.uuid4().hex[:6]}, a prompt that nobody has rendered yet."
    _signal_workers(signal.SIGSTOP)
    try:
        ids = await _submit(api, 40, "t-disp", text, 5000)
        await asyncio.sleep(1)
        flush()  # the render job is gone
    finally:
        _signal_workers(signal.SIGCONT)
    deadline = time.monotonic() + 60
    while True:  # the render sweeper finds the prompt again and the calls start
        row = db.execute("SELECT count(*) AS n FROM call_attempts WHERE call_id = ANY(%s)", (ids,)).fetchone()
        if row and row["n"] >= 20:
            break
        assert time.monotonic() < deadline, "the lost render was never found again"
        await asyncio.sleep(0.2)
    _signal_workers(signal.SIGSTOP)
    try:
        await asyncio.sleep(3)  # event batches pile up in Redis
        flush()
    finally:
        _signal_workers(signal.SIGCONT)
    finals = [await wait_final(api, i, timeout=120) for i in ids]
    report = _report(finals, traced_trunk)
    print("fault report (Redis flushed twice):", report)
    assert report["non_final"] == 0 and report["final_statuses"] == {"completed": 40}
    assert report["invites_per_attempt_max"] == 1 and report["invites"] == 40
    await asyncio.sleep(6)  # lost event batches are noticed and sent again within seconds
    rows = db.execute(
        "SELECT a.id, (SELECT count(*) FROM call_events e "
        "WHERE e.attempt_id = a.id AND e.type = 'ami.Hangup') AS hangups "
        "FROM call_attempts a WHERE a.call_id = ANY(%s)",
        (ids,),
    ).fetchall()
    assert len(rows) == 40 and all(r["hangups"] == 1 for r in rows), "every event recorded, none twice"
    answered = db.execute(
        "SELECT count(*) AS n FROM call_events WHERE call_id = ANY(%s) AND type = 'status' "
        "AND data->>'status' = 'in-progress'",
        (ids,),
    ).fetchone()
    assert answered is not None and answered["n"] == 40
