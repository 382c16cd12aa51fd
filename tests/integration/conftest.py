"""Integration tests talk to the real stack (`make up`, or `make test` which starts it):
PostgreSQL, Redis, Asterisk nodes and SIPp carriers. Nothing here is mocked or skipped."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

FINAL = {"completed", "busy", "no-answer", "failed", "canceled"}


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite with `make test` (it starts the stack)")
    return value


@pytest.fixture(scope="session")
def api_url() -> str:
    return _env("SESPCL_API_URL")


@pytest.fixture(scope="session")
def api_key() -> str:
    return _env("SESPCL_API_KEY")


@pytest.fixture(scope="session")
async def api(api_url: str, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=15
    ) as client:
        yield client


@pytest.fixture(scope="session")
def db() -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(_env("DATABASE_URL"), row_factory=dict_row, autocommit=True) as conn:
        yield conn


async def _poll(
    api: httpx.AsyncClient, path: str, ready: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """GET `path` until its body is `ready`; the test fails, showing the last body, after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if ready(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{path} not there after {timeout} s: {body}")
        await asyncio.sleep(0.3)


async def wait_final(api: httpx.AsyncClient, call_id: str, timeout: float = 90) -> dict[str, Any]:
    return await _poll(api, f"/v1/calls/{call_id}", lambda call: call["status"] in FINAL, timeout)


async def wait_events(
    api: httpx.AsyncClient,
    call_id: str,
    last_type: str,
    timeout: float = 15,
    *,
    and_types: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Status events are stored with the status; Asterisk's and the dispatcher's own events come
    in batches through the workers. Wait until the final status event and `and_types` are in."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/v1/calls/{call_id}/events")
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        final = any(e["type"] == "status" and e["data"].get("status") == last_type for e in events)
        if final and set(and_types) <= {e["type"] for e in events}:
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"no '{last_type}' status event for {call_id} after {timeout} s: {events}")
        await asyncio.sleep(0.3)


CAMPAIGN_TEMPLATE = "Hello {{name}}, your appointment is on {{day}}."


def nanp_numbers(count: int) -> list[str]:
    """Distinct valid NANP numbers (exchange 2xx-9xx), different on every call."""
    start = uuid.uuid4().int % 5_000_000
    return [f"+1415{200 + (start + i) // 10000 % 800:03d}{(start + i) % 10000:04d}" for i in range(count)]


async def new_campaign(api: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    body = {
        "name": f"test {uuid.uuid4().hex[:6]}",
        "defaults": {"tts": {"text": CAMPAIGN_TEMPLATE}, "ring_timeout_s": 10},
    }
    body.update(extra)
    response = await api.post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v1/campaigns/{response.json()['id']}"
    return dict(response.json())


async def wait_cancel_done(api: httpx.AsyncClient, campaign_id: str, timeout: float = 30) -> dict[str, Any]:
    """A canceled campaign, once the dispatchers' background cancel has ended its queued calls."""

    def done(campaign: dict[str, Any]) -> bool:
        return campaign["cancel"] is not None and bool(campaign["cancel"]["done"])

    return await _poll(api, f"/v1/campaigns/{campaign_id}", done, timeout)


def call_body(
    to: str = "+14155550123", text: str = "Hello from the test suite.", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"to": to, "tts": {"text": text}}
    body.update(extra)
    return body


class HeldPrompt:
    """A prompt held 'being rendered': a pending asset row marked planned (its render as good as
    enqueued) that no job renders, so a call using it is certainly not dialed until `release()`
    marks it ready (with a real file)."""

    def __init__(self, db: psycopg.Connection[dict[str, Any]], text: str) -> None:
        from orchestrator.domain.audio import SpeechRequest

        self.db, self.text = db, text
        self.key = SpeechRequest(text=text, voice="en-us").key()
        db.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text, planned_at) "
            "VALUES (%s, 'espeak-ng', 'en-us', %s, now())",
            (self.key, text),
        )

    def body(self, **extra: Any) -> dict[str, Any]:
        return call_body(tts={"text": self.text, "voice": "en-us"}, **extra)

    def release(self) -> None:
        ready = self.db.execute("SELECT path FROM audio_assets WHERE status = 'ready' LIMIT 1").fetchone()
        assert ready is not None, "no rendered prompt to borrow"
        self.db.execute(
            "UPDATE audio_assets SET status = 'ready', path = %s WHERE hash = %s", (ready["path"], self.key)
        )


@pytest.fixture(scope="module", params=["ami", "ari"])
async def farm_driver(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The whole farm dialed through one driver: a module's tests run once per driver."""
    from tests.integration.cli import node_drivers

    driver: str = request.param
    before = node_drivers()
    await switch_drivers(dict.fromkeys(before, driver))
    try:
        yield driver
    finally:
        await switch_drivers(before)


async def switch_drivers(drivers: dict[str, str]) -> None:
    """Re-register nodes with these drivers and wait until the dispatcher is back on each."""
    from tests.integration.cli import node_drivers, sespcl, set_node_driver

    changed = [name for name, driver in drivers.items() if node_drivers().get(name) != driver]
    for name in changed:
        set_node_driver(name, drivers[name])
    if not changed:
        return
    await asyncio.sleep(3)  # the dispatcher re-reads nodes every 2 s and reconnects
    deadline = time.monotonic() + 30
    while True:
        states = {n["name"]: n["state"] for n in json.loads(sespcl("nodes", "list", "--json").stdout)}
        if all(states.get(name) == "up" for name in drivers):
            return
        assert time.monotonic() < deadline, f"nodes not up after switching drivers: {states}"
        await asyncio.sleep(0.25)
