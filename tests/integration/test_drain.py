"""`sespcl nodes drain` holds the moment it returns: no dispatcher sends the node a new call after."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import psycopg

from tests.integration.cli import sespcl
from tests.integration.conftest import call_body, wait_final

Db = psycopg.Connection[dict[str, Any]]
NAMES = ("Maria", "Ahmed", "Lena", "Kofi", "Sofia", "Haruto", "Amara", "Lucas")


def _states() -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in json.loads(sespcl("nodes", "list", "--json").stdout)}


async def _submit(api: httpx.AsyncClient, count: int, first: int) -> list[str]:
    async def one(i: int) -> str:
        name = NAMES[i % len(NAMES)]
        text = f"Hello {name}, your appointment on Tuesday at {9 + i % 8}:30 is confirmed."
        response = await api.post("/v1/calls", json=call_body(to=f"+1415266{first + i:04d}", text=text))
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_calls_submitted_right_after_a_drain_never_reach_the_drained_node(
    api: httpx.AsyncClient, db: Db
) -> None:
    # Both nodes up and dialing: a first batch proves n1 takes calls before the drain.
    deadline = time.monotonic() + 30
    while not all(n["state"] == "up" for n in _states().values()):
        assert time.monotonic() < deadline, f"nodes not up: {_states()}"
        await asyncio.sleep(0.25)
    before = [await wait_final(api, i, timeout=90) for i in await _submit(api, 24, 1000)]
    assert "n1" in {c["attempts"][-1]["node"] for c in before}, "n1 took no call before its drain"

    drained = sespcl("nodes", "drain", "n1")
    assert drained.returncode == 0, drained.stderr
    try:
        # At once: the dispatcher has not re-read the nodes yet (it does every 2 s).
        ids = await _submit(api, 40, 2000)
        finals = [await wait_final(api, i, timeout=120) for i in ids]
        nodes = [a["node"] for c in finals for a in c["attempts"]]
        assert nodes and set(nodes) == {"n2"}, f"calls placed on the drained node: {nodes.count('n1')}"
        assert all(c["status"] == "completed" for c in finals), [c["status"] for c in finals]
        assert _states()["n1"]["drained"] is True
    finally:
        assert sespcl("nodes", "undrain", "n1").returncode == 0
