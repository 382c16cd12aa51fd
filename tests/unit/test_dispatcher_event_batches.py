"""How the dispatcher hands its AMI events to the workers: each flush sends what it found, in as
few jobs as events_batch_max allows, and never chases the events arriving while it sends (at a
few hundred calls a second that made dozens of tiny RQ jobs a second). Fake sink; the real path
is in the integration tests."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.unit.test_dispatcher_node_faults import _dispatcher


class SlowSink:
    """An RQ enqueue takes a few milliseconds, during which the AMI stream goes on."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def enqueue_events(self, batch: list[dict[str, Any]]) -> str:
        time.sleep(0.01)
        self.batches.append(list(batch))
        return f"job-{len(self.batches)}"


def _with_sink(batch_max: int) -> tuple[Any, SlowSink]:
    dispatcher = _dispatcher()
    sink = SlowSink()
    dispatcher._sink = sink
    dispatcher._settings = dataclasses.replace(dispatcher._settings, events_batch_max=batch_max)
    return dispatcher, sink


def _record(dispatcher: Any, count: int) -> None:
    for _ in range(count):
        dispatcher._record(uuid.uuid4(), uuid.uuid4(), datetime.now(UTC), "ami.Newstate", {})


async def test_a_flush_sends_what_it_found_and_leaves_later_events_for_the_next() -> None:
    dispatcher, sink = _with_sink(batch_max=2000)
    _record(dispatcher, 100)
    found = [event["uid"] for event in dispatcher._events]

    async def stream() -> None:  # events keep coming while the flush sends
        for _ in range(40):
            _record(dispatcher, 3)
            await asyncio.sleep(0.002)

    arriving = asyncio.ensure_future(stream())
    await dispatcher._flush_events()
    await arriving
    assert [[event["uid"] for event in batch] for batch in sink.batches] == [found], "one job"
    assert len(dispatcher._events) == 120, "those that came during the flush wait for the next"
    await dispatcher._flush_events()
    assert [len(batch) for batch in sink.batches] == [100, 120]
    assert not dispatcher._events


async def test_a_flush_splits_what_it_found_at_the_batch_limit_in_order() -> None:
    dispatcher, sink = _with_sink(batch_max=40)
    _record(dispatcher, 100)
    found = [event["uid"] for event in dispatcher._events]
    await dispatcher._flush_events()
    assert [len(batch) for batch in sink.batches] == [40, 40, 20]
    assert [event["uid"] for batch in sink.batches for event in batch] == found
    assert dispatcher._outbox.in_flight() == ["job-1", "job-2", "job-3"], "each followed until recorded"
