"""Status callbacks end to end: calls placed through the API with a `status_callback`, the stack's
sender (`sespcl webhooks run`) POSTing to a receiver in this test that checks every signature with
the independent `standardwebhooks` package.

The receiver listens on SESPCL_WEBHOOK_TEST_RECEIVER (127.0.60.1), the one loopback address
`make test` lets callbacks reach (SESPCL_WEBHOOK_ALLOW_HOSTS): `localhost` stays refused.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from orchestrator.supervision.supervisor_rpc import Supervisor
from tests.integration.conftest import FINAL, call_body, nanp_numbers, wait_events, wait_final
from tests.integration.webhook_receiver import Receiver, receiving

Db = psycopg.Connection[dict[str, Any]]
STATE = Path(os.environ.get("SESPCL_STATE_DIR", ".stack"))
RECEIVER_ADDRESS = os.environ.get("SESPCL_WEBHOOK_TEST_RECEIVER", "127.0.60.1")
SENDER = "webhooks:webhooks"
EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}


def _secret() -> str:
    secret = os.environ.get("SESPCL_WEBHOOK_SECRET")
    if not secret:
        pytest.fail("SESPCL_WEBHOOK_SECRET is not set: run the suite with `make test` (.stack/env has it)")
    return secret


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    allowed = os.environ.get("SESPCL_WEBHOOK_ALLOW_HOSTS", "")
    if RECEIVER_ADDRESS not in allowed.split(","):
        pytest.fail(
            f"the stack does not let callbacks reach {RECEIVER_ADDRESS}: start it with "
            f"SESPCL_WEBHOOK_ALLOW_HOSTS={RECEIVER_ADDRESS} (make test does)"
        )
    async with receiving(_secret(), RECEIVER_ADDRESS) as state:
        yield state


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)


async def _webhooks(api: httpx.AsyncClient, call_id: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/v1/calls/{call_id}/webhooks")
    assert answer.status_code == 200, answer.text
    deliveries: list[dict[str, Any]] = answer.json()["webhooks"]
    return deliveries


async def _all_delivered(api: httpx.AsyncClient, call_id: str, timeout: float = 15) -> list[dict[str, Any]]:
    """The call's deliveries once each is recorded delivered: the sender records a success a few
    milliseconds after the receiver has it (settlements are stored in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = await _webhooks(api, call_id)
        if listed and all(d["status"] == "delivered" for d in listed):
            return listed
        if time.monotonic() > deadline:
            pytest.fail(f"not every delivery recorded delivered within {timeout} s: {listed}")
        await asyncio.sleep(0.2)


async def _status_events(api: httpx.AsyncClient, call_id: str, final: str) -> list[tuple[str, str]]:
    """The (event, status) pairs the call's status history should have made: the demo carrier
    answers without ringing, so `ringing` comes only when the node saw it."""
    history = await wait_events(api, call_id, final)
    statuses = [e["data"]["status"] for e in history if e["type"] == "status"]
    return [
        (EVENT_OF_STATUS.get(status) or "completed", status)
        for status in statuses
        if status in EVENT_OF_STATUS or status in FINAL
    ]


async def _place(api: httpx.AsyncClient, url: str, events: list[str] | None = None, **extra: Any) -> str:
    callback: dict[str, Any] = {"url": url} if events is None else {"url": url, "events": events}
    [to] = nanp_numbers(1)
    body = call_body(
        to=to,
        text="Hello Amara, your prescription is ready for pickup at the Elm Street pharmacy.",
        status_callback=callback,
        metadata={"patient_ref": "RX-88412", "note": 'Zoë\'s "refill" <b>#2</b>'},
        **extra,
    )
    answer = await api.post("/v1/calls", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def test_every_status_event_arrives_signed_in_order_with_the_call_as_it_was(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    url = receiver.url("ok")
    call_id = await _place(api, url)
    call = await wait_final(api, call_id)
    assert call["status"] == "completed"
    expected = await _status_events(api, call_id, "completed")
    assert [event for event, _ in expected][:1] == ["initiated"] and len(expected) >= 3
    path = receiver.path(url)
    arrived = await _until(
        lambda: len(receiver.delivered(path)) >= len(expected) and receiver.delivered(path),
        30,
        "every status event",
    )
    assert [(a.payload["type"], a.payload["status"]) for a in arrived] == expected
    last = arrived[-1].payload
    assert last["call_id"] == call_id and last["to"] == call["to"] and last["attempt"] == 1
    assert last["metadata"] == {"patient_ref": "RX-88412", "note": 'Zoë\'s "refill" <b>#2</b>'}
    assert last["hangup_cause"]["code"] == 16 and last["status_reason"] == call["status_reason"]
    ats = [datetime.fromisoformat(a.payload["at"]) for a in arrived]
    assert ats == sorted(ats)
    assert receiver.bad == []
    listed = await _all_delivered(api, call_id)
    assert [d["type"] for d in listed] == [event for event, _ in expected]
    assert [d["webhook_id"] for d in listed] == [a.webhook_id for a in arrived]
    assert all(len(d["tries"]) == 1 for d in listed)
    assert all(d["tries"][0]["status_code"] == 200 for d in listed)


async def test_a_receiver_failing_twice_gets_the_event_a_third_time_with_the_same_id(
    api: httpx.AsyncClient, receiver: Receiver, db: Db
) -> None:
    url = receiver.url("fail-twice")
    call_id = await _place(api, url, ["completed"])
    await wait_final(api, call_id)
    # Tried at once, then 5 s later; the third try is due 5 minutes after the second: checked
    # on the row, then brought forward rather than waited for.
    second = await _two_tries(api, call_id)
    tries = second["tries"]
    assert [t["status_code"] for t in tries] == [500, 500]
    gap = datetime.fromisoformat(tries[1]["at"]) - datetime.fromisoformat(tries[0]["at"])
    assert timedelta(seconds=4.5) <= gap <= timedelta(seconds=8)
    due = datetime.fromisoformat(second["next_try_at"]) - datetime.fromisoformat(tries[1]["at"])
    assert abs(due - timedelta(minutes=5)) < timedelta(seconds=1)
    db.execute("UPDATE webhook_deliveries SET next_try_at = now() WHERE id = %s", (second["webhook_id"],))
    path = receiver.path(url)
    [delivered] = await _until(lambda: receiver.delivered(path), 30, "the third try")
    assert delivered.webhook_id == second["webhook_id"]
    assert [a.webhook_id for a in receiver.arrivals if a.path == path] == [second["webhook_id"]] * 3
    [final] = await _webhooks(api, call_id)
    assert final["status"] == "delivered" and [t["status_code"] for t in final["tries"]] == [500, 500, 200]
    assert receiver.bad == []


async def _two_tries(api: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        listed = await _webhooks(api, call_id)
        if listed and len(listed[0]["tries"]) >= 2:
            return listed[0]
        assert time.monotonic() < deadline, f"no second try within 30 s: {listed}"
        await asyncio.sleep(0.3)


async def test_the_sender_killed_mid_delivery_delivers_everything_after_restart_in_order(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    supervisor = Supervisor(str(STATE / "supervisor.sock"))
    url = receiver.url("hold")
    call_id = await _place(api, url)
    call = await wait_final(api, call_id)
    expected = [event for event, _ in await _status_events(api, call_id, call["status"])]
    await _until(lambda: receiver.held, 30, "a delivery held open by the receiver")
    before = {p.name: p for p in await supervisor.processes()}[SENDER]
    await supervisor.signal(SENDER, "KILL")

    async def restarted() -> bool:
        now = {p.name: p for p in await supervisor.processes()}[SENDER]
        return now.pid not in (0, before.pid) and now.state == "RUNNING"

    deadline = time.monotonic() + 30
    while not await restarted():
        assert time.monotonic() < deadline, "the sender was not restarted"
        await asyncio.sleep(0.3)
    # The held request's connection died with the sender: its answer reaches nobody.
    receiver.release.set()
    # The held event's lease (60 s) runs out, it is taken again, then the call's later events.
    path = receiver.path(url)
    await _until(
        lambda: len({a.webhook_id for a in receiver.delivered(path)}) >= len(expected),
        150,
        "every event",
    )
    listed = await _all_delivered(api, call_id)
    assert [d["type"] for d in listed] == expected
    first_success: list[str] = []
    for arrival in receiver.delivered(path):
        if arrival.webhook_id not in first_success:
            first_success.append(arrival.webhook_id)
    assert first_success == [d["webhook_id"] for d in listed], "out of order"
    assert receiver.held[0] == listed[0]["webhook_id"]
    assert receiver.bad == []


async def test_a_name_that_resolves_to_loopback_fails_with_the_ssrf_reason(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    url = f"http://localhost:{receiver.port}/ok/ssrf"
    call_id = await _place(api, url, ["completed"])
    await wait_final(api, call_id)
    deadline = time.monotonic() + 30
    while True:
        listed = await _webhooks(api, call_id)
        if listed and listed[0]["status"] != "pending":
            break
        assert time.monotonic() < deadline, f"still pending: {listed}"
        await asyncio.sleep(0.3)
    [delivery] = listed
    assert delivery["status"] == "failed" and delivery["next_try_at"] is None
    [attempt] = delivery["tries"]
    assert attempt["status_code"] is None
    assert "SSRF" in attempt["error"] and "localhost" in attempt["error"]
    assert receiver.arrivals == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/v1/calls",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "file:///etc/passwd",
        "https://user:pw@hooks.example.com/",
    ],
)
async def test_a_callback_to_a_literal_private_address_is_refused_at_submission(
    api: httpx.AsyncClient, url: str
) -> None:
    answer = await api.post(
        "/v1/calls",
        json=call_body(to=nanp_numbers(1)[0], status_callback={"url": url, "events": ["completed"]}),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "callback-url-refused"


async def test_an_unknown_calls_webhooks_are_404(api: httpx.AsyncClient) -> None:
    answer = await api.get(f"/v1/calls/{uuid.uuid4()}/webhooks")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "no-such-call"
