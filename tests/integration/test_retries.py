"""Retries by outcome, with real carriers: each attempt is its own dialog with its own outcome."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.integration.cli import carrier_trunk
from tests.integration.conftest import call_body, wait_final
from tests.integration.sipp import Carrier


@pytest.fixture()
def busy_carrier() -> Iterator[Carrier]:
    with carrier_trunk("t-retry", "127.0.30.7", "busy") as carrier:
        yield carrier


async def test_busy_retried_until_attempts_run_out(api: httpx.AsyncClient, busy_carrier: Carrier) -> None:
    created = await api.post(
        "/v1/calls", json=call_body(trunk="t-retry", max_attempts=3, retry_on=["busy"], retry_backoff_s=1)
    )
    assert created.status_code == 202, created.text
    call = await wait_final(api, created.json()["id"], timeout=60)
    assert call["status"] == "busy" and call["hangup_cause"]["code"] == 17
    attempts = call["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert all(a["status"] == "busy" for a in attempts)
    starts = [datetime.fromisoformat(a["started_at"]) for a in attempts]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0, f"backoff 1 s, growing: {gaps}"
    assert len(busy_carrier.invites()) == 3, "one INVITE per attempt, no more"
    events = (await api.get(f"/v1/calls/{call['id']}/events")).json()["events"]
    retries = [e for e in events if e["type"] == "status" and e["data"].get("retry_after") == "busy"]
    assert len(retries) == 2


async def test_outcome_not_in_retry_on_is_final(api: httpx.AsyncClient, busy_carrier: Carrier) -> None:
    created = await api.post(
        "/v1/calls",
        json=call_body(trunk="t-retry", max_attempts=3, retry_on=["no-answer"], retry_backoff_s=1),
    )
    call = await wait_final(api, created.json()["id"], timeout=30)
    assert call["status"] == "busy" and len(call["attempts"]) == 1


async def test_campaign_retry_policy(api: httpx.AsyncClient, busy_carrier: Carrier) -> None:
    campaign = (
        await api.post(
            "/v1/campaigns",
            json={
                "name": "retry",
                "defaults": {
                    "trunk": "t-retry",
                    "tts": {"text": "Hi."},
                    "max_attempts": 2,
                    "retry_on": ["busy"],
                    "retry_backoff_s": 1,
                },
            },
        )
    ).json()
    assert campaign["defaults"]["max_attempts"] == 2
    await api.post(
        f"/v1/campaigns/{campaign['id']}/calls",
        content=json.dumps({"to": "+14155550123"}).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    listed = (await api.get("/v1/calls", params={"campaign": campaign["id"]})).json()["calls"]
    call = await wait_final(api, listed[0]["id"], timeout=30)
    assert call["status"] == "busy" and len(call["attempts"]) == 2


async def test_bad_retry_settings(api: httpx.AsyncClient) -> None:
    for extra, field in (
        ({"max_attempts": 11}, "max_attempts"),
        ({"retry_on": ["completed"]}, "retry_on.0"),
        ({"retry_backoff_s": -1}, "retry_backoff_s"),
    ):
        response = await api.post("/v1/calls", json=call_body(**extra))
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
