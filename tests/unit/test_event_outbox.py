"""The outbox of event batches: what is sent again, when, and in what pieces."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from orchestrator.domain.records import CallEvent
from orchestrator.services.outbox import (
    RESEND_AFTER_MAX_S,
    SPLIT_AFTER_FAILURES,
    EventOutbox,
    HeldBatch,
    resend_delay,
)

CALL = uuid.UUID("0193a0c4-5e1f-7c2a-9b3d-2f6e8a1c4d5b")
AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _events(n: int) -> list[CallEvent]:
    """The same events each time: tests compare what was held with what goes out again."""
    return [
        CallEvent(uid=f"e{i}", call_id=CALL, attempt_id=None, at=AT, type="dispatch.claimed", data={})
        for i in range(n)
    ]


def test_a_recorded_batch_is_let_go() -> None:
    outbox = EventOutbox()
    outbox.sent("j1", HeldBatch(_events(3)))
    outbox.recorded("j1")
    assert outbox.in_flight() == []
    assert outbox.events_held() == 0


def test_a_lost_batch_waits_before_it_is_sent_again_and_longer_each_time() -> None:
    outbox = EventOutbox()
    outbox.sent("j1", HeldBatch(_events(4)))
    held = outbox.lost("j1", now=100.0)
    assert held is not None and held.failures == 1
    assert outbox.due(now=101.9) == []
    (again,) = outbox.due(now=102.0)
    assert again.events == _events(4) and again.failures == 1
    outbox.sent("j2", again)
    outbox.lost("j2", now=200.0)
    assert outbox.due(now=203.9) == []
    assert len(outbox.due(now=204.0)) == 1


def test_the_wait_doubles_up_to_a_minute() -> None:
    delays = [resend_delay(n) for n in range(1, 10)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(delays) == RESEND_AFTER_MAX_S
    assert delays == sorted(delays)


def test_a_batch_that_keeps_failing_is_sent_in_halves_and_no_event_is_dropped() -> None:
    outbox = EventOutbox()
    batch = HeldBatch(_events(5))
    job = 0
    for _ in range(SPLIT_AFTER_FAILURES - 1):
        outbox.sent(f"j{job}", batch)
        outbox.lost(f"j{job}", now=0.0)
        (batch,) = outbox.due(now=float("inf"))
        job += 1
    outbox.sent(f"j{job}", batch)
    outbox.lost(f"j{job}", now=0.0)
    halves = outbox.due(now=float("inf"))
    assert [len(h.events) for h in halves] == [2, 3]
    assert [e for h in halves for e in h.events] == _events(5)


def test_a_single_poisoned_event_is_kept_not_dropped() -> None:
    outbox = EventOutbox()
    batch = HeldBatch(_events(1))
    for job in range(SPLIT_AFTER_FAILURES + 2):
        outbox.sent(f"j{job}", batch)
        outbox.lost(f"j{job}", now=0.0)
        (batch,) = outbox.due(now=float("inf"))
    assert batch.events == _events(1)
    assert batch.failures == SPLIT_AFTER_FAILURES + 2


def test_an_unknown_job_is_ignored() -> None:
    assert EventOutbox().lost("nobody", now=0.0) is None


def test_a_batch_that_could_not_be_sent_waits_like_a_lost_one() -> None:
    outbox = EventOutbox()
    outbox.hold(HeldBatch(_events(2)), now=10.0)
    assert outbox.in_flight() == [] and outbox.events_held() == 2
    assert outbox.due(now=11.9) == []
    (again,) = outbox.due(now=12.0)
    assert again.failures == 1 and again.events == _events(2)
