"""A dispatcher's run on fake ports: every periodic step of the loop table runs without failing,
and a stop hands on what it still holds (transitions stored, unsent attempts requeued, events
sent) before it retires."""

from __future__ import annotations

import asyncio
import uuid

from structlog.testing import capture_logs

from orchestrator.domain.ports import Unsent
from tests.unit.factories import make_claim, state_of
from tests.unit.fakes import FakeSink, FakeStore, eventually, make_dispatcher


async def test_a_stop_hands_on_what_the_dispatcher_holds_then_retires() -> None:
    store, sink = FakeStore(), FakeSink()
    dispatcher = make_dispatcher(store, sink=sink)
    with capture_logs() as logs:
        running = asyncio.ensure_future(dispatcher.run())
        await eventually(lambda: store.heartbeats > 1)  # the loops run: the start's, then its own
        claim = make_claim("n1")
        state = state_of(claim)
        dispatcher.live.adopted(state, dispatcher.clock.monotonic(), 30, trunk="carrier-a")
        unsent = uuid.uuid4()
        dispatcher.unsent.add([unsent], Unsent.NOT_SENT)
        dispatcher.recorder.record(
            claim.call_id, claim.attempt_id, dispatcher.clock.now(), "ami.Newstate", {}
        )
        dispatcher.transitions.push(state.on_lost("lost", dispatcher.clock.now()))
        dispatcher.stop()
        await asyncio.wait_for(running, 2.0)
    assert [t.attempt_id for t in store.applied] == [claim.attempt_id]
    assert str(claim.attempt_id) not in dispatcher.live, "its final transition was stored"
    assert ("NOT_SENT", [unsent]) in store.requeued
    assert [event["type"] for batch in sink.batches for event in batch] == ["ami.Newstate"]
    assert store.retired
    assert not [entry for entry in logs if entry["event"] == "dispatcher.step_failed"], "every step ran"
