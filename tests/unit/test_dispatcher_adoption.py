"""Taking over a stopped dispatcher's attempts, with fake ports: what the store hands over as
typed records is followed if it was sent, queued again if not; a call put back is told in its
story with the status the store gave it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from structlog.testing import capture_logs

from orchestrator.domain.call import CallStatus
from orchestrator.domain.records import Requeued
from orchestrator.services.dispatch import STRAY_AFTER_S
from tests.unit.factories import adopted_attempt
from tests.unit.fakes import FakeClock, FakeNode, FakeStore, make_dispatcher


async def test_adopted_attempts_sent_are_followed_and_the_unsent_queued_again() -> None:
    clock = FakeClock()
    sent = adopted_attempt("n1", started_at=clock.now() - timedelta(seconds=4), ring_timeout_s=45)
    unsent = adopted_attempt("n1", sent=False)
    store = FakeStore(adopted=[sent, unsent], clock=clock)
    dispatcher = make_dispatcher(store, clock=clock, nodes=(FakeNode("n1"),))
    with capture_logs() as logs:
        await dispatcher.adoption.adopt_orphans()
    state = dispatcher.live.get(str(sent.attempt_id))
    assert state is not None and state.call_id == sent.call_id and state.node == "n1"
    assert state.status is CallStatus.RINGING and state.far_end_responded, "its far end was ringing"
    assert state.channel == sent.channel and state.retry == sent.retry and state.number == 1
    live = next(live for live in dispatcher.live if live.key == str(sent.attempt_id))
    assert live.ring_s == 45 and live.started_at == clock.monotonic() - 4.0, "its age counts"
    assert str(unsent.attempt_id) not in dispatcher.live, "never sent: not followed"
    assert store.requeued == [("NOT_SENT", [unsent.attempt_id]), ("stray", STRAY_AFTER_S)]
    assert [(e["event"], e.get("count")) for e in logs if e["event"] == "dispatch.adopted"] == [
        ("dispatch.adopted", 1)
    ]
    dispatcher.stop()
    await clock.advance(30)  # the reconcile pass spawned for n1 runs out


async def test_a_call_put_back_is_told_with_the_status_the_store_gave_it() -> None:
    dispatcher = make_dispatcher()
    call, attempt = uuid.uuid4(), uuid.uuid4()
    with capture_logs() as logs:
        dispatcher.unsent.note_requeued([Requeued(call, attempt, CallStatus.CANCELED)])
    told = [(e["call_id"], e["attempt_id"], e["type"], e["data"]) for e in dispatcher.recorder.waiting()]
    assert told == [
        (call, attempt, "dispatch.not_sent", {"status": "canceled"}),
        (call, None, "status", {"status": "canceled"}),
    ]
    assert [e for e in logs if e["event"] == "dispatch.requeued_unsent"] == [
        {
            "event": "dispatch.requeued_unsent",
            "log_level": "warning",
            "call_id": str(call),
            "attempt_id": str(attempt),
            "status": "canceled",
        }
    ]
