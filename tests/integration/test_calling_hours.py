"""When a call may go out: not before, not after, only inside calling hours in the callee's zone."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

from tests.integration.conftest import HeldPrompt, call_body, wait_final

EXPIRED = "expired before it could be dialed"


def _closed_window(zone: str) -> dict[str, str]:
    """A two-hour window that starts six hours from now in `zone`: closed for certain."""
    local = datetime.now(ZoneInfo(zone))
    start = (local + timedelta(hours=6)).replace(minute=0)
    end = start + timedelta(hours=2)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def _open_window(zone: str) -> dict[str, str]:
    local = datetime.now(ZoneInfo(zone))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


async def _attempts(api: httpx.AsyncClient, call_id: str) -> list[Any]:
    return list((await api.get(f"/v1/calls/{call_id}")).json()["attempts"])


async def test_not_before_holds_the_call(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    not_before = datetime.now(UTC) + timedelta(seconds=4)
    created = await api.post(
        "/v1/calls", json=call_body(text="Later, please.", not_before=not_before.isoformat())
    )
    assert created.status_code == 202, created.text
    call = await wait_final(api, created.json()["id"], timeout=40)
    assert call["status"] == "completed"
    started = datetime.fromisoformat(call["attempts"][0]["started_at"])
    assert started >= not_before


async def test_outside_calling_hours_waits_in_the_callee_zone(api: httpx.AsyncClient) -> None:
    # +1 415 is Los Angeles: the window is read there, whatever the server's clock zone.
    created = await api.post(
        "/v1/calls", json=call_body(to="+14155550123", calling_window=_closed_window("America/Los_Angeles"))
    )
    call_id = created.json()["id"]
    body = created.json()
    assert body["time_zones"] == ["America/Los_Angeles"] and body["calling_window"] is not None
    await asyncio.sleep(3)
    waiting = (await api.get(f"/v1/calls/{call_id}")).json()
    assert waiting["status"] == "queued" and waiting["attempts"] == []
    assert datetime.fromisoformat(waiting["not_before"]) > datetime.now(UTC) + timedelta(hours=4)
    assert (await api.post(f"/v1/calls/{call_id}/cancel")).json()["status"] == "canceled"


async def test_inside_calling_hours_dials(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/calls",
        json=call_body(
            to="+442071838750", text="Inside hours.", calling_window=_open_window("Europe/London")
        ),
    )
    assert created.json()["time_zones"] == ["Europe/London"]
    assert (await wait_final(api, created.json()["id"]))["status"] == "completed"


async def test_explicit_zone_overrides_the_number(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/calls",
        json=call_body(to="+14155550123", tz="Asia/Tokyo", calling_window=_closed_window("Asia/Tokyo")),
    )
    assert created.json()["time_zones"] == ["Asia/Tokyo"]
    await asyncio.sleep(2)
    assert await _attempts(api, created.json()["id"]) == []
    await api.post(f"/v1/calls/{created.json()['id']}/cancel")


async def test_expired_before_dialing_is_canceled(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    held = HeldPrompt(db, f"Too late {uuid.uuid4().hex[:6]}.")
    expires = datetime.now(UTC) + timedelta(seconds=2)
    created = await api.post("/v1/calls", json=held.body(expires_at=expires.isoformat()))
    assert created.status_code == 202, created.text
    await asyncio.sleep(3)
    held.release()
    call = await wait_final(api, created.json()["id"], timeout=15)
    assert call["status"] == "canceled" and call["status_reason"] == EXPIRED and call["attempts"] == []


async def test_campaign_window_applies_to_its_rows(api: httpx.AsyncClient) -> None:
    campaign = (
        await api.post(
            "/v1/campaigns",
            json={
                "name": "hours",
                "defaults": {"tts": {"text": "Hi."}, "calling_window": _closed_window("America/New_York")},
            },
        )
    ).json()
    assert campaign["defaults"]["calling_window"] is not None
    rows = json.dumps({"to": "+12125550123"}).encode()
    await api.post(
        f"/v1/campaigns/{campaign['id']}/calls",
        content=rows,
        headers={"Content-Type": "application/x-ndjson"},
    )
    await asyncio.sleep(2.5)
    calls = (await api.get("/v1/calls", params={"campaign": campaign["id"]})).json()["calls"]
    assert [(c["status"], c["time_zones"]) for c in calls] == [("queued", ["America/New_York"])]
    await api.post(f"/v1/campaigns/{campaign['id']}/cancel")


async def test_a_window_that_never_opens_in_all_the_zones_is_refused(api: httpx.AsyncClient) -> None:
    """A Russian mobile may be in any of eleven zones: 09:00-17:00 is never open in all of them,
    and such a call would never be dialed nor end. The callee's own zone makes it valid."""
    office = {"start": "09:00", "end": "17:00"}
    refused = await api.post("/v1/calls", json=call_body(to="+79123456789", calling_window=office))
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("calling-window-never-opens", "calling_window")
    accepted = await api.post(
        "/v1/calls",
        json=call_body(
            to="+79123456789", calling_window=office, tz="Europe/Moscow", not_before="2099-01-01T00:00:00Z"
        ),
    )
    assert accepted.status_code == 202, accepted.text
    await api.post(f"/v1/calls/{accepted.json()['id']}/cancel")
    campaign = (
        await api.post(
            "/v1/campaigns",
            json={"name": "zones", "defaults": {"tts": {"text": "Hi."}, "calling_window": office}},
        )
    ).json()
    rows = [
        {"to": "+79123456789"},
        {"to": "+79123456780", "tz": "Asia/Vladivostok"},
        {"to": "+79123456781", "tz": "Mars/Olympus"},
    ]
    report = (
        await api.post(
            f"/v1/campaigns/{campaign['id']}/calls",
            content="\n".join(json.dumps(r) for r in rows).encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
    ).json()
    assert report["accepted"] == 1, report
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(1, "to"), (3, "tz")], report
    calls = (await api.get("/v1/calls", params={"campaign": campaign["id"]})).json()["calls"]
    assert [c["time_zones"] for c in calls] == [["Asia/Vladivostok"]]
    await api.post(f"/v1/campaigns/{campaign['id']}/cancel")
    past = await api.post(
        "/v1/campaigns",
        json={"name": "late", "defaults": {"tts": {"text": "Hi."}, "expires_at": "2020-01-01T00:00:00Z"}},
    )
    assert past.status_code == 422 and past.json()["error"]["field"] == "defaults.expires_at", past.text


async def test_bad_times_are_refused(api: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"calling_window": {"start": "9:00", "end": "20:00"}}, "calling_window"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"not_before": "2030-01-01T10:00:00"}, "not_before"),
        ({"not_before": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"}, "expires_at"),
    ]
    for extra, field in cases:
        response = await api.post("/v1/calls", json=call_body(**extra))
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
