"""Supervision that sees a stuck process, not only a dead one: the API, the dispatcher and a worker
frozen with SIGSTOP and a node killed with SIGKILL, all at once while calls are live. Each is
back within 30 s, and every call still ends once, dialed at most once per attempt."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from orchestrator.asterisk.probe import ami_banner
from orchestrator.supervision.supervisor_rpc import ProcessInfo, Supervisor
from tests.integration.cli import carrier_trunk, sespcl
from tests.integration.conftest import FINAL, call_body, wait_final

Db = psycopg.Connection[dict[str, Any]]
STATE = Path(os.environ.get("SESPCL_STATE_DIR", ".stack"))
BACK_WITHIN_S = 30.0
NODE_N2 = "127.0.10.2"
FROZEN = {  # process → its heartbeat file (the API is asked instead)
    "api:api": None,
    "dispatcher:dispatcher": STATE / "run" / "dispatcher.beat",
    "worker:worker-1": STATE / "run" / "worker-1.beat",
}
NAMES = ("Maria", "Ahmed", "Lena", "Kofi", "Sofia", "Haruto", "Amara", "Lucas", "Priya", "Mateo")


async def _processes() -> dict[str, ProcessInfo]:
    return {p.name: p for p in await Supervisor(str(STATE / "supervisor.sock")).processes()}


def _node_up_since(name: str, since: float) -> bool:
    """`nodes list` shows the node up, as a dispatcher saw it after `since` (the state column of a
    frozen dispatcher's last word does not count)."""
    for node in json.loads(sespcl("nodes", "list", "--json").stdout):
        if node["name"] == name and node["state"] == "up" and node["last_seen_at"]:
            return datetime.fromisoformat(node["last_seen_at"]).timestamp() > since
    return False


async def _api_live(api_url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{api_url}/health/live")).status_code == 200
    except httpx.HTTPError:
        return False


def _statuses(db: Db, ids: list[str]) -> dict[str, str]:
    rows = db.execute("SELECT id::text, status FROM calls WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
    return {r["id"]: r["status"] for r in rows}


async def test_stuck_and_killed_processes_come_back_and_no_call_is_lost_or_doubled(
    api: httpx.AsyncClient, api_url: str, db: Db
) -> None:
    with carrier_trunk("t-watch", "127.0.30.21", "answer") as carrier:
        responses = await asyncio.gather(
            *(
                api.post(
                    "/v1/calls",
                    json=call_body(
                        to=f"+1415277{3000 + i:04d}",
                        text=f"Hello {NAMES[i % len(NAMES)]}, the water supply on your street is back "
                        f"since {8 + i % 9} o'clock. Thank you for your patience during the works.",
                        trunk="t-watch",
                    ),
                )
                for i in range(40)
            )
        )
        ids = [r.json()["id"] for r in responses]
        deadline = time.monotonic() + 60
        while sum(s != "queued" for s in _statuses(db, ids).values()) < 10:
            assert time.monotonic() < deadline, "no call started"
            await asyncio.sleep(0.2)

        before = await _processes()
        node_pid = int((STATE / "asterisk-n2.pid").read_text().strip())
        faulted_at, faulted_wall = time.monotonic(), time.time()
        for name in FROZEN:
            os.kill(before[name].pid, signal.SIGSTOP)
        os.kill(node_pid, signal.SIGKILL)

        back: dict[str, float] = {}
        while len(back) < len(FROZEN) + 1:
            elapsed = time.monotonic() - faulted_at
            assert elapsed < BACK_WITHIN_S, f"after {elapsed:.0f} s only {sorted(back)} are back"
            now = await _processes()
            for name, beat in FROZEN.items():
                if name in back or now[name].pid in (0, before[name].pid):
                    continue
                # back: another process, and showing life (not merely started)
                if await _api_live(api_url) if beat is None else beat.stat().st_mtime > faulted_wall:
                    back[name] = elapsed
            node_back = now["node-n2:node-n2"].pid not in (0, node_pid) and await ami_banner(NODE_N2, 5038)
            if "node-n2" not in back and node_back and _node_up_since("n2", faulted_wall):
                back["node-n2"] = elapsed
            await asyncio.sleep(0.5)
        print("supervision report: back after (s)", {k: round(v, 1) for k, v in back.items()})

        finals = [await wait_final(api, i, timeout=180) for i in ids]
        assert all(c["status"] in FINAL for c in finals)
        # Nothing lost: each call ended as the carrier or the dead node made it end.
        assert {c["status"] for c in finals} <= {"completed", "failed"}, [c["status"] for c in finals]
        failed = [c for c in finals if c["status"] == "failed"]
        assert all(c["attempts"] and c["attempts"][-1]["node"] == "n2" for c in failed), failed
        # Never twice: each number reached the carrier in one dialog at most.
        dialed = [m.first_line.split()[1].split("@")[0].removeprefix("sip:") for m in carrier.invites()]
        twice = {number for number in dialed if dialed.count(number) > 1}
        assert not twice, f"dialed more than once: {sorted(twice)}"
        assert len(dialed) <= sum(len(c["attempts"]) for c in finals)
