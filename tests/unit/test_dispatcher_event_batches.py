"""How the dispatcher hands its AMI events to the workers: each flush sends what it found, in as
few jobs as events_batch_max allows, and never chases the events arriving while it sends (at a
few hundred calls a second that made dozens of tiny RQ jobs a second). Fake sink; the real path
is in the integration tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from orchestrator.domain.records import CallEvent
from orchestrator.services.dispatch import EventRecorder
from tests.unit.fakes import FakeClock, FakeSink, FakeStore


class SlowSink(FakeSink):
    """An RQ enqueue takes a few milliseconds, during which the AMI stream goes on."""

    def enqueue_events(self, batch: list[CallEvent]) -> str:
        time.sleep(0.01)
        return super().enqueue_events(batch)


def _recorder(batch_max: int) -> tuple[EventRecorder, SlowSink]:
    sink = SlowSink()
    return EventRecorder(sink, FakeStore().record_events, batch_max, FakeClock()), sink


def _record(recorder: EventRecorder, count: int) -> None:
    for _ in range(count):
        recorder.record(uuid.uuid4(), uuid.uuid4(), datetime.now(UTC), "ami.Newstate", {})


async def test_a_flush_sends_what_it_found_and_leaves_later_events_for_the_next() -> None:
    recorder, sink = _recorder(batch_max=2000)
    _record(recorder, 100)
    found = [event["uid"] for event in recorder.waiting()]

    async def stream() -> None:  # events keep coming while the flush sends
        for _ in range(40):
            _record(recorder, 3)
            await asyncio.sleep(0.002)

    arriving = asyncio.ensure_future(stream())
    await recorder.flush()
    await arriving
    assert [[event["uid"] for event in batch] for batch in sink.batches] == [found], "one job"
    assert len(recorder.waiting()) == 120, "those that came during the flush wait for the next"
    await recorder.flush()
    assert [len(batch) for batch in sink.batches] == [100, 120]
    assert not recorder.waiting()


async def test_a_flush_splits_what_it_found_at_the_batch_limit_in_order() -> None:
    recorder, sink = _recorder(batch_max=40)
    _record(recorder, 100)
    found = [event["uid"] for event in recorder.waiting()]
    await recorder.flush()
    assert [len(batch) for batch in sink.batches] == [40, 40, 20]
    assert [event["uid"] for batch in sink.batches for event in batch] == found
    assert recorder.in_flight() == ["job-1", "job-2", "job-3"], "each followed until recorded"
