"""One real call per outcome, all placed at once through the API, Asterisk and SIPp."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.cli import carrier_trunk
from tests.integration.conftest import call_body, wait_events, wait_final

# trunk → (ring timeout, expected status, expected Q.850 cause or None)
OUTCOMES: dict[str, tuple[str, int, str, set[int] | None]] = {
    "completed": ("demo", 30, "completed", {16}),
    "busy": ("busy", 30, "busy", {17}),
    "no-answer": ("noanswer", 5, "no-answer", {19, 18}),
    # 183 with early media and no 180, as most carriers ring: still no-answer, not failed.
    "no-answer-early-media": ("t-progress", 5, "no-answer", {19, 18}),
    "failed-unavailable": ("unavailable", 30, "failed", None),
    "failed-unreachable": ("unreachable", 5, "failed", None),
}


@pytest.fixture(scope="module")
def progress_carrier() -> Iterator[None]:
    with carrier_trunk("t-progress", "127.0.30.11", "progress"):
        yield


@pytest.fixture(scope="module")
async def placed(
    api: httpx.AsyncClient, farm_driver: str, progress_carrier: None
) -> dict[str, dict[str, Any]]:
    """Submit every outcome's call concurrently, then wait for all of them together, once with
    the farm on AMI and once on ARI: both drivers must give the same outcomes."""
    run = uuid.uuid4().hex[:8]

    async def place(label: str, trunk: str, ring: int) -> tuple[str, dict[str, Any]]:
        body = call_body(
            text=f"Outcome test {label} {run}.",
            trunk=trunk,
            ring_timeout_s=ring,
            metadata={"test": label},
            **{"from": "+14155550100"},
        )
        response = await api.post("/v1/calls", json=body)
        assert response.status_code == 202, response.text
        assert response.headers["Location"] == f"/v1/calls/{response.json()['id']}"
        assert response.json()["status"] == "queued"
        return label, await wait_final(api, response.json()["id"], timeout=120)

    results = await asyncio.gather(*(place(label, t, r) for label, (t, r, _, _) in OUTCOMES.items()))
    return dict(results)


@pytest.mark.parametrize("label", list(OUTCOMES))
async def test_outcome(placed: dict[str, dict[str, Any]], label: str) -> None:
    _, _, expected, causes = OUTCOMES[label]
    call = placed[label]
    assert call["status"] == expected, call
    assert call["ended_at"] is not None
    assert len(call["attempts"]) == 1
    attempt = call["attempts"][0]
    assert attempt["status"] == expected and attempt["node"] in {"n1", "n2"}
    if causes is not None:
        assert call["hangup_cause"]["code"] in causes, call


async def test_completed_call_has_a_duration(placed: dict[str, dict[str, Any]]) -> None:
    call = placed["completed"]
    assert call["answered_at"] is not None
    assert call["duration_s"] is not None and call["duration_s"] > 0.5, call
    assert call["from"] == "+14155550100" and call["metadata"] == {"test": "completed"}


async def test_events_recorded_in_order(
    api: httpx.AsyncClient, placed: dict[str, dict[str, Any]], farm_driver: str
) -> None:
    call = placed["completed"]
    events = await wait_events(api, call["id"], "completed", and_types=(f"{farm_driver}.Hangup",))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert statuses.index("initiated") < statuses.index("in-progress") < statuses.index("completed")
    types = [e["type"] for e in events]
    completed_at = next(i for i, e in enumerate(events) if e["data"].get("status") == "completed")
    hangup = f"{farm_driver}.Hangup"  # events are named after the driver that saw them
    assert hangup in types and types.index(hangup) < completed_at


async def test_busy_events_carry_the_cause(
    api: httpx.AsyncClient, placed: dict[str, dict[str, Any]], farm_driver: str
) -> None:
    events = await wait_events(api, placed["busy"]["id"], "busy", and_types=(f"{farm_driver}.Hangup",))
    hangups = [e for e in events if e["type"] == f"{farm_driver}.Hangup"]
    assert hangups and hangups[0]["data"]["Cause"] == "17"
