"""Faults with real calls in flight: a node killed, work lost from Redis. Every call must end in
exactly one final status, and the carrier must never see a second INVITE for an attempt."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from orchestrator.config import Settings
from tests.integration.cli import carrier_trunk, dispatcher_pid, node_drivers, sespcl, stack_env
from tests.integration.conftest import FINAL, call_body, switch_drivers, wait_events, wait_final
from tests.integration.sipp import REPO, Carrier
from tests.integration.tcp_cut import tcp_cut
from tests.integration.test_farm import _node_state, _wait_state

Db = psycopg.Connection[dict[str, Any]]
STATE = Path(os.environ.get("SESPCL_STATE_DIR", REPO / ".stack"))


@pytest.fixture()
def kill_carrier() -> Iterator[Carrier]:
    with carrier_trunk("t-kill", "127.0.30.5", "answer") as carrier:
        yield carrier


@pytest.mark.parametrize("driver", ["ami", "ari"])
async def test_node_killed_mid_batch(
    api: httpx.AsyncClient, db: Db, kill_carrier: Carrier, driver: str
) -> None:
    before = node_drivers()
    await switch_drivers({"n2": driver})
    text = "A long enough notice that calls are still up when their node is killed, one two three."
    # n1 drained until n2 carries 40 calls: n2's pace starts low after reconnecting while n1's
    # is warm, so n2 would otherwise take only a few of the batch. Then both take calls.
    assert sespcl("nodes", "drain", "n1").returncode == 0
    try:
        created = await asyncio.gather(
            *(
                api.post("/v1/calls", json=call_body(to=f"+1415555{2000 + i:04d}", text=text, trunk="t-kill"))
                for i in range(200)
            )
        )
        ids = [r.json()["id"] for r in created]
        deadline = time.monotonic() + 30
        while _live_on(db, "n2", ids) < 40:
            assert time.monotonic() < deadline, "calls never reached node n2"
            await asyncio.sleep(0.1)
    finally:
        assert sespcl("nodes", "undrain", "n1").returncode == 0
    pid = int((STATE / "asterisk-n2.pid").read_text().strip())
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        finals = [await wait_final(api, i, timeout=90) for i in ids]
        elapsed = time.monotonic() - killed_at
        print(f"fault report (node n2 on {driver} kill -9):", _report(finals, kill_carrier))
        assert all(c["status"] in FINAL for c in finals)
        on_dead = [c for c in finals if c["attempts"] and c["attempts"][-1]["node"] == "n2"]
        assert on_dead, "some calls were on the killed node"
        # supervisord starts the node again within seconds: the dispatcher sees it restarted
        lost = [c for c in on_dead if c["status"] == "failed" and "restarted" in (c["status_reason"] or "")]
        assert lost, "the killed node's live calls end failed, with the reason"
        assert elapsed < 60, f"the dead node's calls took {elapsed:.0f} s to settle"
        # never twice: one INVITE per attempt at the carrier, whatever happened to the node
        attempts = sum(len(c["attempts"]) for c in finals)
        assert len(kill_carrier.invites()) <= attempts
        for call in finals:
            assert len([a for a in call["attempts"] if a["status"] not in FINAL]) == 0
    finally:
        # supervisord starts the node again by itself
        await _wait_state("n2", "up", within_s=30)
        await switch_drivers(before)


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
    # Killed twice while it claims and dials: some attempts are claimed and not yet sent, some
    # sent and not yet answered. The supervisor starts a new dispatcher within a second; the
    # second wave is killed in the hands of that new dispatcher.
    ids: list[str] = []
    killed: list[int] = []
    for wave in range(2):
        while (pid := dispatcher_pid()) is None or pid in killed:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # logged in to the nodes, orphans adopted
        wave_ids = await _submit(api, 100, "t-disp", text, 3000 + 100 * wave)
        ids += wave_ids
        deadline = time.monotonic() + 60
        while True:
            row = db.execute(
                "SELECT count(*) AS n FROM call_attempts WHERE call_id = ANY(%s)", (wave_ids,)
            ).fetchone()
            if row and row["n"] >= 20:
                break
            assert time.monotonic() < deadline, "fewer than 20 attempts"
            await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    finals = [await wait_final(api, i, timeout=150) for i in ids]
    report = _report(finals, traced_trunk)
    requeued = db.execute(
        "SELECT count(*) AS n FROM call_events WHERE call_id = ANY(%s) AND type = 'dispatch.not_sent'", (ids,)
    ).fetchone()
    print("fault report (dispatcher SIGKILL twice):", report, "claimed, never sent, queued again:", requeued)
    assert report["non_final"] == 0
    # SIPp answered every call: the new dispatcher adopts the attempts, reads the channels' state
    # from the nodes, and follows each call to its real outcome. An attempt claimed and not yet
    # marked sent is queued again (the test below makes that state exactly).
    assert report["invites_per_attempt_max"] == 1 and report["invites"] <= report["attempts"]
    # Every call that reached the carrier was answered there; events lost with a killed
    # dispatcher are made good from the node's channel list and its CDRs, so each one ends
    # completed. Only an attempt marked sent whose Originate never left the dying process (no
    # INVITE, no channel, no CDR) may end failed: it might have reached the node, so it is not
    # dialed again.
    assert report["final_statuses"].get("completed", 0) == report["invites"], report
    for call in finals:
        sent = [a for a in call["attempts"] if a["status"] == "completed"]
        assert len(sent) <= 1, "no call is answered twice"
    # Status events are stored with the status they record: none lost with a killed dispatcher.
    final_events = db.execute(
        "SELECT call_id, count(*) AS n FROM call_events WHERE call_id = ANY(%s) AND type = 'status' "
        "AND data->>'status' IN ('completed', 'failed') GROUP BY call_id",
        (ids,),
    ).fetchall()
    assert len(final_events) == len(ids) and all(r["n"] == 1 for r in final_events)


async def test_attempt_claimed_by_a_dead_dispatcher_and_never_sent_is_dialed_once(
    api: httpx.AsyncClient, db: Db, traced_trunk: Carrier
) -> None:
    """The state a dispatcher SIGKILLed between its claim and its Originates leaves behind, made
    exactly: attempts owned by a dispatcher gone silent, one never marked sent and one marked
    sent. The live dispatcher adopts both. The unsent one is removed and its call queued again,
    then dialed once as attempt 1; the one marked sent may have reached a node, so it is followed
    there (no channel, no CDR: it fails, and is never dialed a second time)."""
    ids = [
        (await api.post("/v1/calls", json=call_body(to=f"+1415555{7000 + i:04d}", trunk="t-disp",
                                                    not_before="2099-01-01T00:00:00Z"))).json()["id"]
        for i in range(2)
    ]  # fmt: skip
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    unsent, sent = uuid.uuid4(), uuid.uuid4()
    db.execute(
        "INSERT INTO dispatchers (id, host, pid, heartbeat_at) "
        "VALUES (%s, 'elsewhere', 1, now() - interval '1 hour')",
        (ghost,),
    )
    for attempt, call, was_sent in ((unsent, ids[0], False), (sent, ids[1], True)):
        db.execute(
            "UPDATE calls SET status = 'initiated', attempt_count = 1, not_before = now() WHERE id = %s",
            (call,),
        )
        db.execute(
            "INSERT INTO call_attempts (id, call_id, number, node, trunk, status, owner, originate_sent) "
            "VALUES (%s, %s, 1, 'n1', 't-disp', 'initiated', %s, %s)",
            (attempt, call, ghost, was_sent),
        )
    requeued, followed = [await wait_final(api, i, timeout=60) for i in ids]
    print(
        "adopted unsent:",
        requeued["status"],
        requeued["attempts"],
        "adopted sent:",
        followed["status_reason"],
    )
    assert requeued["status"] == "completed", requeued
    assert [a["number"] for a in requeued["attempts"]] == [1], "the unsent attempt is not counted"
    assert requeued["attempts"][0]["id"] != str(unsent)
    assert len(traced_trunk.invites()) == 1, "only the requeued call reached the carrier"
    events = [
        e["type"] for e in await wait_events(api, ids[0], "completed", and_types=("dispatch.not_sent",))
    ]
    assert "dispatch.not_sent" in events
    assert followed["status"] == "failed" and "next seen" in (followed["status_reason"] or ""), followed
    assert [a["id"] for a in followed["attempts"]] == [str(sent)], "never dialed again"
    db.execute("DELETE FROM dispatchers WHERE id = %s", (ghost,))


async def test_an_attempt_whose_claim_raised_after_its_commit_is_dialed_once(
    api: httpx.AsyncClient, db: Db, traced_trunk: Carrier
) -> None:
    """A claim can fail after its COMMIT reached the server (the connection dropped): its
    attempts are stored, owned by the live dispatcher, which never heard of them. Made exactly:
    an old attempt of the live dispatcher, never marked sent. It is removed and its call queued
    again, then dialed once."""
    later = call_body(to="+14155557100", trunk="t-disp", not_before="2099-01-01T00:00:00Z")
    call_id = (await api.post("/v1/calls", json=later)).json()["id"]
    pid = dispatcher_pid()
    live = db.execute("SELECT id FROM dispatchers WHERE pid = %s", (pid,)).fetchone()
    assert live is not None, "the stack's dispatcher, alive and heartbeating"
    stray = uuid.uuid4()
    db.execute(
        "UPDATE calls SET status = 'initiated', attempt_count = 1, not_before = now() WHERE id = %s",
        (call_id,),
    )
    db.execute(
        "INSERT INTO call_attempts (id, call_id, number, node, trunk, status, owner, originate_sent, "
        "started_at) VALUES (%s, %s, 1, 'n1', 't-disp', 'initiated', %s, false, now() - interval '30 s')",
        (stray, call_id, live["id"]),
    )
    call = await wait_final(api, call_id, timeout=60)
    assert call["status"] == "completed", call
    assert [a["number"] for a in call["attempts"]] == [1] and call["attempts"][0]["id"] != str(stray)
    assert len(traced_trunk.invites()) == 1
    events = await wait_events(api, call_id, "completed", and_types=("dispatch.not_sent",))
    assert "dispatch.not_sent" in [e["type"] for e in events]


NODE_LIMIT = 8


def _most_live_at_once(db: Db, call_ids: list[str]) -> dict[str, int]:
    """Per node, the most of these calls' attempts live at one moment (started, not ended)."""
    rows = db.execute(
        "SELECT node, started_at, ended_at FROM call_attempts WHERE call_id = ANY(%s)", (call_ids,)
    ).fetchall()
    most: dict[str, int] = {}
    for node in {r["node"] for r in rows}:
        edges = sorted(
            [(r["started_at"], 1) for r in rows if r["node"] == node]
            + [(r["ended_at"], -1) for r in rows if r["node"] == node]
        )  # at the same instant an end sorts first: a freed channel is taken at once
        live = 0
        for _, step in edges:
            live += step
            most[node] = max(most.get(node, 0), live)
    return most


async def test_two_dispatchers_never_share_a_call(
    api: httpx.AsyncClient, db: Db, traced_trunk: Carrier
) -> None:
    """Two dispatchers on one queue and one farm: no call claimed by both, and each node's
    channel limit holds across them (each alone would fill it)."""
    limits = {r["name"]: r["max_channels"] for r in db.execute("SELECT name, max_channels FROM nodes")}
    db.execute("UPDATE nodes SET max_channels = %s", (NODE_LIMIT,))
    second = subprocess.Popen(
        [str(REPO / ".venv/bin/sespcl"), "dispatcher"],
        env=stack_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(3)  # logged in to the nodes, and both have read the limit
        ids = await _submit(api, 200, "t-disp", "Two dispatchers.", 4000)
        finals = [await wait_final(api, i, timeout=120) for i in ids]
    finally:
        second.terminate()
        second.wait(timeout=30)
        for name, limit in limits.items():
            db.execute("UPDATE nodes SET max_channels = %s WHERE name = %s", (limit, name))
    report = _report(finals, traced_trunk) | {"most_live_per_node": _most_live_at_once(db, ids)}
    print("fault report (two dispatchers):", report)
    assert all(n <= NODE_LIMIT for n in report["most_live_per_node"].values()), report
    assert report["non_final"] == 0 and report["final_statuses"] == {"completed": 200}
    assert all(len(c["attempts"]) == 1 for c in finals)
    assert report["invites_per_attempt_max"] == 1 and report["invites"] == 200
    owners = db.execute(
        "SELECT count(DISTINCT owner) AS n FROM call_attempts WHERE call_id = ANY(%s)", (ids,)
    ).fetchone()
    assert owners is not None and owners["n"] == 2, "both dispatchers took calls: the test exercised sharing"
    deadline = time.monotonic() + 15
    while True:  # events reach PostgreSQL in batches, a second or two after the status
        hangups = db.execute(
            "SELECT attempt_id, count(*) AS n FROM call_events WHERE call_id = ANY(%s) "
            "AND type IN ('ami.Hangup', 'ari.Hangup') GROUP BY attempt_id",
            (ids,),
        ).fetchall()
        if len(hangups) >= 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert len(hangups) == 200 and all(h["n"] == 1 for h in hangups), "each event recorded once"


async def test_a_dispatcher_cut_off_from_redis_stores_its_events_itself(
    api: httpx.AsyncClient, db: Db, traced_trunk: Carrier
) -> None:
    """A second dispatcher whose link to Redis goes down after it started: the calls it dials
    have their events recorded all the same (it stores them itself), none kept only in its
    memory, including those it holds when it is stopped."""
    redis = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tcp_cut(("127.0.0.1", port), (redis.hostname or "127.0.0.1", redis.port or 6379)) as link:
        env = stack_env() | {"REDIS_URL": redis._replace(netloc=f"127.0.0.1:{port}").geturl()}
        second = subprocess.Popen(
            [str(REPO / ".venv/bin/sespcl"), "dispatcher"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.sleep(3)  # started (it checks Redis at start) and logged in to the nodes
            link.cut("reset")
            ids = await _submit(api, 60, "t-disp", f"Redis cut {uuid.uuid4().hex[:6]}.", 4300)
            finals = [await wait_final(api, i, timeout=120) for i in ids]
        finally:
            second.terminate()
            second.wait(timeout=30)
        assert {c["status"] for c in finals} == {"completed"}
        owners = db.execute(
            "SELECT count(DISTINCT owner) AS n FROM call_attempts WHERE call_id = ANY(%s)", (ids,)
        ).fetchone()
        assert owners is not None and owners["n"] == 2, "both dispatchers dialed: the cut one was exercised"
        deadline = time.monotonic() + 20
        while True:  # still cut: the second dispatcher's events cannot have gone through Redis
            hangups = db.execute(
                "SELECT attempt_id, count(*) AS n FROM call_events WHERE call_id = ANY(%s) "
                "AND type IN ('ami.Hangup', 'ari.Hangup') GROUP BY attempt_id",
                (ids,),
            ).fetchall()
            db.commit()
            if len(hangups) >= 60 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert len(hangups) == 60 and all(h["n"] == 1 for h in hangups), len(hangups)


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
    env = stack_env()

    def flush() -> None:
        subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "FLUSHALL"], check=True, capture_output=True)

    text = f"Flush test {uuid.uuid4().hex[:6]}, a prompt that nobody has rendered yet."
    _signal_workers(signal.SIGSTOP)
    try:
        ids = await _submit(api, 200, "t-disp", text, 5000)
        await asyncio.sleep(1)
        flush()  # the render job is gone
    finally:
        _signal_workers(signal.SIGCONT)
    deadline = time.monotonic() + 60
    while True:  # the render sweeper finds the prompt again and the calls start
        row = db.execute("SELECT count(*) AS n FROM call_attempts WHERE call_id = ANY(%s)", (ids,)).fetchone()
        if row and row["n"] >= 60:
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
    assert report["non_final"] == 0 and report["final_statuses"] == {"completed": 200}
    assert report["invites_per_attempt_max"] == 1 and report["invites"] == 200
    deadline = time.monotonic() + 15
    while True:  # RQ registers a worker when it starts: each heartbeat registers it again
        workers = (await api.get("/health")).json()["checks"]["workers"]
        if workers["ok"]:
            break
        assert time.monotonic() < deadline, f"after the flush, /health still says {workers}"
        await asyncio.sleep(0.5)
    await asyncio.sleep(6)  # lost event batches are noticed and sent again within seconds
    rows = db.execute(
        "SELECT a.id, (SELECT count(*) FROM call_events e "
        "WHERE e.attempt_id = a.id AND e.type IN ('ami.Hangup', 'ari.Hangup')) AS hangups "
        "FROM call_attempts a WHERE a.call_id = ANY(%s)",
        (ids,),
    ).fetchall()
    assert len(rows) == 200 and all(r["hangups"] == 1 for r in rows), "every event recorded, none twice"
    answered = db.execute(
        "SELECT count(*) AS n FROM call_events WHERE call_id = ANY(%s) AND type = 'status' "
        "AND data->>'status' = 'in-progress'",
        (ids,),
    ).fetchone()
    assert answered is not None and answered["n"] == 200


@pytest.fixture()
def cut_carrier() -> Iterator[Carrier]:
    with carrier_trunk("t-cut", "127.0.30.9", "answer") as carrier:
        yield carrier


RELAY_HOST = "127.0.50.2"


@pytest.mark.parametrize(
    ("driver", "mode"), [("ami", "reset"), ("ami", "blackhole"), ("ari", "reset")]
)  # fmt: skip
async def test_node_link_cut_for_30_s(
    api: httpx.AsyncClient, db: Db, cut_carrier: Carrier, driver: str, mode: str
) -> None:
    """Node n2's dialing link (AMI, or ARI's HTTP and WebSocket) is cut for 30 s with calls live
    on it: reset (RST, then refused), or blackholed (the session stays open, every byte is
    dropped). The calls go on in Asterisk; n2 gets no new calls meanwhile; after the link is back
    the dispatcher reconnects, reads n2's channels (and CDRs) and settles every call, none dialed
    twice and none left live."""
    before = node_drivers()
    await switch_drivers({"n2": driver})
    row = db.execute("SELECT ami_host, ami_port, ari_url FROM nodes WHERE name = 'n2'").fetchone()
    assert row is not None
    if driver == "ami":
        upstream, relay = (str(row["ami_host"]), int(row["ami_port"])), (RELAY_HOST, int(row["ami_port"]))
        point, restore = ("ami_host", RELAY_HOST), ("ami_host", row["ami_host"])
    else:
        url = urlsplit(str(row["ari_url"]))
        upstream, relay = (str(url.hostname), int(url.port or 80)), (RELAY_HOST, int(url.port or 80))
        point = ("ari_url", str(row["ari_url"]).replace(str(url.hostname), RELAY_HOST, 1))
        restore = ("ari_url", row["ari_url"])
    with tcp_cut(relay, upstream) as link:
        db.execute(f"UPDATE nodes SET {point[0]} = %s WHERE name = 'n2'", (point[1],))
        try:
            deadline = time.monotonic() + 20
            while link.connections < 1 or _node_state("n2") != "up":
                assert time.monotonic() < deadline, "the dispatcher never came to n2 through the relay"
                await asyncio.sleep(0.25)
            text = "The link to this node is about to be cut. " * 3  # about 8 s of speech
            # n1 drained until n2 carries 40 calls: n2's pace starts low after reconnecting
            # while n1's is warm, so n2 would otherwise take only a few of the batch.
            assert sespcl("nodes", "drain", "n1").returncode == 0
            try:
                ids = await _submit(api, 240, "t-cut", text, 6000)
                deadline = time.monotonic() + 60
                while (live := _live_on(db, "n2", ids)) < 40:
                    assert time.monotonic() < deadline, f"only {live} calls live on n2"
                    await asyncio.sleep(0.1)
            finally:
                assert sespcl("nodes", "undrain", "n1").returncode == 0
            connections_before = link.connections
            link.cut(mode)  # type: ignore[arg-type]
            cut_at = _now_db(db)
            # n2's real pace as the link went: what it was sent in the second before. (The pace
            # stored in nodes is up to 2 s old, and slow start grows it 1.5x every 0.5 s.)
            pace = db.execute(
                "SELECT count(*) AS n FROM call_attempts WHERE node = 'n2' AND call_id = ANY(%s) "
                "AND started_at BETWEEN %s - interval '1 second' AND %s",
                (ids, cut_at, cut_at),
            ).fetchone()
            await asyncio.sleep(30)
            fed_during_cut = db.execute(
                "SELECT count(*) AS n FROM call_attempts WHERE node = 'n2' AND call_id = ANY(%s) "
                "AND started_at > %s + interval '5 seconds'",
                (ids, cut_at),
            ).fetchone()
            link.restore()
            restored = time.monotonic()
            finals = [await wait_final(api, i, timeout=120) for i in ids]
            settled_in = time.monotonic() - restored
            reconnected = link.connections > connections_before
        finally:
            db.execute(f"UPDATE nodes SET {restore[0]} = %s WHERE name = 'n2'", (restore[1],))
    await _wait_state("n2", "up", within_s=20)
    await switch_drivers(before)
    report = _report(finals, cut_carrier)
    print(
        f"fault report ({driver} link {mode} for 30 s):",
        report,
        f"settled {settled_in:.1f} s after restore;",
        f"n2 was sent {pace['n'] if pace else '?'} calls in the second before the cut",
    )
    assert report["non_final"] == 0
    assert report["invites_per_attempt_max"] == 1
    assert all(len(c["attempts"]) == 1 for c in finals), "no call is dialed twice"
    assert reconnected, "the dispatcher connected again after the cut"
    assert fed_during_cut is not None and fed_during_cut["n"] == 0, "n2 got no new calls while cut off"
    # SIPp answers everything: a call followed to its end, or whose end was read back from the
    # node (channel list, then CDR), is completed. Only Originates swallowed by the cut link
    # never reached Asterisk (no INVITE): those fail, and the pacer's in-flight cap keeps them few.
    assert report["final_statuses"].get("completed", 0) == report["invites"], report
    unseen = [c for c in finals if c["status"] != "completed"]
    assert all("next seen" in (c["status_reason"] or "") for c in unseen), unseen[:3]
    # About the Originates in flight when the link went: the pacer caps those per node at twice
    # its pace × its target latency (plus its base latency, a few ms here). The pace may have
    # grown within that second, hence the margin; without the cap, the ~3 s until pings fail
    # would swallow pace × 3 calls.
    assert pace is not None
    target_s = Settings().node_pace_target_ms / 1000  # as the stack reads it: default or env
    in_flight_cap = max(4.0, float(pace["n"]) * target_s * 2)
    assert len(unseen) <= 2 * in_flight_cap + 10, (report, in_flight_cap)
    assert settled_in < 30, f"calls settled {settled_in:.0f} s after the link came back"


def _live_on(db: Db, node: str, ids: list[str]) -> int:
    row = db.execute(
        "SELECT count(*) AS n FROM call_attempts WHERE node = %s AND ended_at IS NULL AND call_id = ANY(%s)",
        (node, ids),
    ).fetchone()
    return int(row["n"]) if row else 0


def _now_db(db: Db) -> Any:
    row = db.execute("SELECT now() AS now").fetchone()
    assert row is not None
    return row["now"]


async def test_worker_killed_mid_render(api: httpx.AsyncClient, db: Db, traced_trunk: Carrier) -> None:
    """Both workers SIGKILLed while one renders a prompt: the job stays 'started' in RQ forever
    as far as RQ knows. The dispatcher's sweeper sees it abandoned and queues it again; the
    supervisor restarts the workers; the calls go out once each."""
    from redis import Redis
    from rq.registry import StartedJobRegistry

    env = stack_env()
    started = StartedJobRegistry("sespcl-render", connection=Redis.from_url(env["REDIS_URL"]))
    for _ in range(5):
        text = f"Worker kill {uuid.uuid4().hex[:6]}. " + "Please listen to this notice carefully. " * 8
        ids = await _submit(api, 5, "t-disp", text, 7000 + _ * 10)
        deadline = time.monotonic() + 20
        while not started.get_job_ids():
            assert time.monotonic() < deadline, "the render never started"
            await asyncio.sleep(0.002)
        _signal_workers(signal.SIGKILL)
        asset = db.execute(
            "SELECT a.status FROM audio_assets a JOIN calls c ON c.audio_hash = a.hash WHERE c.id = %s",
            (ids[0],),
        ).fetchone()
        if asset is not None and asset["status"] == "pending":
            break  # killed mid-job: the case under test
        await asyncio.gather(*(wait_final(api, i, timeout=120) for i in ids))
    else:
        pytest.fail("never caught a render in progress")
    finals = [await wait_final(api, i, timeout=150) for i in ids]
    report = _report(finals, traced_trunk)
    print("fault report (workers SIGKILLed mid-render):", report)
    assert report["non_final"] == 0 and report["final_statuses"] == {"completed": 5}
    assert all(len(c["attempts"]) == 1 for c in finals)
    asset = db.execute(
        "SELECT a.status, a.render_count FROM audio_assets a JOIN calls c ON c.audio_hash = a.hash "
        "WHERE c.id = %s",
        (ids[0],),
    ).fetchone()
    assert asset == {"status": "ready", "render_count": 1}
