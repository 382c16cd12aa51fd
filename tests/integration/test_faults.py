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

from tests.integration.conftest import FINAL, call_body, wait_final
from tests.integration.sipp import REPO, Carrier
from tests.integration.test_farm import _add, _wait_state, sespcl

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
    carrier = Carrier("t-kill", "127.0.30.5", "answer").start()
    sespcl("trunks", "remove", "t-kill", "--force")
    _add("t-kill", carrier.address)
    try:
        yield carrier
    finally:
        sespcl("trunks", "remove", "t-kill", "--force")
        carrier.stop()


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
