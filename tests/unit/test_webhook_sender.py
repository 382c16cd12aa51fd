"""WebhookSender over an in-memory outbox and a scripted receiver: retries keep the webhook-id,
410 stops a URL, a stop gives leases back, a database that refuses a settlement gets it again."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from orchestrator.domain.errors import StoreUnavailable
from orchestrator.domain.webhook_delivery import OutboxDelivery, Settlement, TryResult, Verdict, parse_secret
from orchestrator.services.webhooks import SenderSettings, WebhookSender

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
URL = "https://hooks.clinic.example/sespcl"
FAST = SenderSettings(concurrency=8, batch=8, poll_s=0.01, settle_every_s=0.005, stop_grace_s=0.05)


@dataclass
class Row:
    id: str
    call_id: str
    url: str
    body: bytes
    status: str = "pending"
    tries: int = 0
    leased: bool = False


@dataclass
class MemoryOutbox:
    """The outbox's rules as the SQL has them: a call's oldest pending row only, not leased; a
    settlement applies to a pending row; a 410 stops the URL's other pending rows."""

    rows: list[Row] = field(default_factory=list)
    stopped_urls: set[str] = field(default_factory=set)
    settle_failures: int = 0
    settled: list[Settlement] = field(default_factory=list)

    def add(self, call_id: str, n: int, url: str = URL) -> Row:
        body = json.dumps({"type": "answered", "call_id": call_id, "n": n}).encode()
        row = Row(id=f"msg_{n:032x}", call_id=call_id, url=url, body=body)
        self.rows.append(row)
        return row

    async def claim(self, limit: int, lease_s: float) -> list[OutboxDelivery]:
        heads: dict[str, Row] = {}
        for row in self.rows:
            if row.status == "pending" and row.call_id not in heads:
                heads[row.call_id] = row
        due = [row for row in heads.values() if not row.leased][:limit]
        for row in due:
            row.leased = True
        return [
            OutboxDelivery(
                id=r.id,
                call_id=r.call_id,
                url=r.url,
                body=r.body,
                tries=r.tries,
                event_at=datetime.now(UTC),
                stopped=r.url in self.stopped_urls,
            )
            for r in due
        ]

    async def settle(self, settlements: list[Settlement]) -> None:
        if self.settle_failures:
            self.settle_failures -= 1
            raise StoreUnavailable("connection lost")
        by_id = {row.id: row for row in self.rows}
        for s in settlements:
            row = by_id[s.delivery_id]
            row.leased = False
            row.status = s.verdict.value
            row.tries += s.result is not None
            if s.stop_url is not None:
                self.stopped_urls.add(s.stop_url)
        self.settled += settlements


@dataclass
class ScriptedReceiver:
    """Answers each URL's POSTs with the next code of its script (the last one repeats)."""

    scripts: dict[str, list[int]]
    posts: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> TryResult:
        self.posts.append((url, body, headers))
        if self.hold is not None:
            await self.hold.wait()
        script = self.scripts[url]
        code = script[min(self.seen[url], len(script) - 1)]
        self.seen[url] += 1
        return TryResult(at=datetime.now(UTC), latency_ms=3.0, status_code=code, error=None)


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.005)


def _sender(
    outbox: MemoryOutbox, receiver: ScriptedReceiver, settings: SenderSettings = FAST
) -> WebhookSender:
    return WebhookSender(outbox, receiver, parse_secret(SECRET), settings)


async def test_a_retried_event_keeps_its_webhook_id_and_every_try_is_signed() -> None:
    outbox = MemoryOutbox()
    row = outbox.add("call-a", 1)
    receiver = ScriptedReceiver({URL: [500, 500, 200]})
    sender = _sender(outbox, receiver)
    task = asyncio.create_task(sender.run())
    await _until(lambda: row.status == "delivered")
    sender.stop()
    await task
    assert [h["webhook-id"] for _, _, h in receiver.posts] == [row.id] * 3
    for _, body, headers in receiver.posts:
        assert Webhook(SECRET).verify(body, headers)["n"] == 1
    assert row.tries == 3
    assert sender.counts == {"pending": 2, "delivered": 1}


async def test_a_calls_next_event_waits_until_the_earlier_one_is_delivered() -> None:
    outbox = MemoryOutbox()
    first, second = outbox.add("call-a", 1), outbox.add("call-a", 2)
    receiver = ScriptedReceiver({URL: [503, 200]})
    sender = _sender(outbox, receiver)
    task = asyncio.create_task(sender.run())
    await _until(lambda: second.status == "delivered")
    sender.stop()
    await task
    assert [h["webhook-id"] for _, _, h in receiver.posts] == [first.id, first.id, second.id]


async def test_410_stops_the_url_and_its_later_events_end_stopped_unsent() -> None:
    outbox = MemoryOutbox()
    gone = "https://old-crm.example/hooks"
    first, second = outbox.add("call-a", 1, gone), outbox.add("call-a", 2, gone)
    other = outbox.add("call-b", 3)
    receiver = ScriptedReceiver({gone: [410], URL: [200]})
    sender = _sender(outbox, receiver)
    task = asyncio.create_task(sender.run())
    await _until(lambda: second.status == "stopped" and other.status == "delivered")
    sender.stop()
    await task
    assert first.status == "stopped"
    assert [u for u, _, _ in receiver.posts].count(gone) == 1
    assert outbox.stopped_urls == {gone}
    assert [s.stop_url for s in outbox.settled if s.delivery_id == first.id] == [gone]


async def test_a_stop_gives_back_the_leases_of_tries_still_in_flight() -> None:
    outbox = MemoryOutbox()
    rows = [outbox.add(f"call-{i}", i) for i in range(3)]
    receiver = ScriptedReceiver({URL: [200]}, hold=asyncio.Event())
    sender = _sender(outbox, receiver)
    task = asyncio.create_task(sender.run())
    await _until(lambda: len(receiver.posts) == 3)
    sender.stop()
    await task
    assert all(row.status == "pending" and not row.leased and row.tries == 0 for row in rows)
    released = [s for s in outbox.settled if s.result is None]
    assert {s.delivery_id for s in released} == {row.id for row in rows}
    assert all(s.verdict is Verdict.RETRY for s in released)


async def test_a_settlement_the_database_did_not_take_is_stored_later() -> None:
    outbox = MemoryOutbox(settle_failures=2)
    row = outbox.add("call-a", 1)
    receiver = ScriptedReceiver({URL: [204]})
    sender = _sender(outbox, receiver)
    task = asyncio.create_task(sender.run())
    await _until(lambda: row.status == "delivered")
    sender.stop()
    await task
    assert len(receiver.posts) == 1


async def test_a_sender_whose_settling_crashed_stops_rather_than_resend_forever() -> None:
    class BrokenOutbox(MemoryOutbox):
        async def settle(self, settlements: list[Settlement]) -> None:
            raise RuntimeError("a bug in the settlement")

    outbox = BrokenOutbox()
    outbox.add("call-a", 1)
    receiver = ScriptedReceiver({URL: [200]})
    sender = _sender(outbox, receiver)
    with pytest.raises(RuntimeError, match="a bug in the settlement"):
        await asyncio.wait_for(sender.run(), 5)
    assert len(receiver.posts) == 1
