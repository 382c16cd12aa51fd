"""Retries by outcome, with real carriers: each attempt is its own dialog with its own outcome."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.cli import carrier_trunk
from tests.integration.conftest import HeldPrompt, call_body, wait_final
from tests.integration.sipp import Carrier


@pytest.fixture()
def busy_carrier() -> Iterator[Carrier]:
    with carrier_trunk("t-retry", "127.0.30.7", "busy") as carrier:
        yield carrier


@pytest.fixture()
def ringing_carrier() -> Iterator[Carrier]:
    with carrier_trunk("t-ringing", "127.0.30.10", "noanswer") as carrier:
        yield carrier


async def _campaign(api: httpx.AsyncClient, trunk: str, **defaults: Any) -> str:
    body = {"name": "retry", "defaults": {"trunk": trunk, "tts": {"text": "Hi."}, **defaults}}
    created = await api.post("/v1/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign: str = created.json()["id"]
    return campaign


async def _campaign_calls(api: httpx.AsyncClient, campaign: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = (await api.get("/v1/calls", params={"campaign": campaign})).json()["calls"]
    return calls


async def test_busy_retried_until_attempts_run_out(api: httpx.AsyncClient, busy_carrier: Carrier) -> None:
    created = await api.post(
        "/v1/calls", json=call_body(trunk="t-retry", max_attempts=3, retry_on=["busy"], retry_backoff_s=1)
    )
    assert created.status_code == 202, created.text
    call = await wait_final(api, created.json()["id"], timeout=60)
    assert call["status"] == "busy" and call["hangup_cause"]["code"] == 17
    # Its reason is the last attempt's own: "retrying after busy" went when that attempt began.
    assert call["status_reason"] is None, call["status_reason"]
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


async def test_a_campaign_canceled_while_its_calls_ring_retries_none(
    api: httpx.AsyncClient, ringing_carrier: Carrier
) -> None:
    """Canceling a campaign leaves its live calls to end as they will, and dials nothing more:
    a call that then ends in an outcome its policy retries ends canceled instead."""
    campaign = await _campaign(
        api, "t-ringing", max_attempts=3, retry_on=["no-answer"], retry_backoff_s=1, ring_timeout_s=5
    )
    numbers = [f"+1415555{n:04d}" for n in range(8)]
    uploaded = await api.post(
        f"/v1/campaigns/{campaign}/calls",
        content="\n".join(json.dumps({"to": n}) for n in numbers).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert uploaded.status_code in (200, 201, 202), uploaded.text
    # Until every call rings: one only claimed when the cancel answers is never sent (it ends
    # canceled with no attempt), which is not what this test is about.
    deadline = time.monotonic() + 20
    while {c["status"] for c in await _campaign_calls(api, campaign)} != {"ringing"}:
        assert time.monotonic() < deadline, "the calls were not all ringing"
        await asyncio.sleep(0.2)
    canceled = await api.post(f"/v1/campaigns/{campaign}/cancel")
    assert canceled.status_code == 200 and canceled.json()["canceled_calls"] == 0, canceled.text
    listed = await _campaign_calls(api, campaign)
    calls = await asyncio.gather(*(wait_final(api, c["id"], 40) for c in listed))
    assert len(calls) == len(numbers)
    for call in calls:
        assert (call["status"], call["status_reason"]) == ("canceled", "campaign canceled"), call
        assert [a["status"] for a in call["attempts"]] == ["no-answer"], call
    assert len(ringing_carrier.invites()) == len(numbers), "one INVITE per call: none dialed again"


async def test_a_queued_call_of_a_canceled_campaign_is_canceled_not_dialed(
    api: httpx.AsyncClient, busy_carrier: Carrier, db: psycopg.Connection[dict[str, Any]]
) -> None:
    """Checked again just before dialing. The campaign is marked canceled behind the API's back,
    as when a retry stored at the same moment as the cancel put a call back in the queue."""
    prompt = HeldPrompt(db, f"Held for the cancel test {time.time()}.")
    campaign = await _campaign(api, "t-retry")
    created = await api.post("/v1/calls", json=prompt.body(trunk="t-retry"))
    assert created.status_code == 202, created.text
    call_id = created.json()["id"]
    db.execute("UPDATE calls SET campaign_id = %s WHERE id = %s", (campaign, call_id))
    db.execute("UPDATE campaigns SET status = 'canceled' WHERE id = %s", (campaign,))
    prompt.release()
    call = await wait_final(api, call_id, 20)
    assert (call["status"], call["status_reason"]) == ("canceled", "campaign canceled"), call
    assert call["attempts"] == [] and busy_carrier.invites() == []
