"""The dispatcher when its store fails, with fake ports: a port error (StoreError) is handled where
the store is called, as any failure was before; a bug is not taken for a database failure but
left to a last resort that logs it (the loop table's wrapper, the transitions' loop, a spawned
task's)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.errors import StoreRefused, StoreUnavailable
from orchestrator.domain.facts import Change
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import CallEvent, Marked, StoredStatus
from orchestrator.services.dispatch import RECONCILE_MIN_AGE_S
from orchestrator.services.dispatch.events import EventRecorder
from orchestrator.services.periodic import every
from tests.unit.factories import make_claim, state_of
from tests.unit.fakes import (
    FakeClock,
    FakeNode,
    FakeSink,
    FakeStore,
    drained_transitions,
    eventually,
    make_dispatcher,
    settle,
)


class MarkFails(FakeStore):
    def __init__(self, error: Exception, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    async def mark_sending(self, attempt_ids: list[uuid.UUID]) -> Marked:
        raise self.error


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_a_mark_the_store_failed_leaves_the_group_known_unsent() -> None:
    claim = make_claim("n1")
    node = FakeNode("n1")
    dispatcher = make_dispatcher(MarkFails(StoreUnavailable("down"), claims=[claim]), nodes=(node,))
    with capture_logs() as logs:
        await dispatcher.sender.claim_and_dial()
    assert [e["count"] for e in _events(logs, "dispatch.mark_sending_failed")] == [1]
    assert dispatcher.unsent.why(claim.attempt_id) is Unsent.NOT_SENT
    assert not node.sent, "nothing dialed"


async def test_a_bug_in_a_mark_is_left_to_the_loops_last_resort() -> None:
    claims = [make_claim("n1")]
    dispatcher = make_dispatcher(MarkFails(KeyError("id"), claims=claims), nodes=(FakeNode("n1"),))
    with pytest.raises(KeyError):
        await dispatcher.sender.claim_and_dial()
    assert dispatcher.unsent.why(claims[0].attempt_id) is None, "not taken for unsent: a stray later"
    stopping = asyncio.Event()
    with capture_logs() as logs:
        looping = asyncio.ensure_future(
            every(
                60.0,
                dispatcher.sender.claim_and_dial,
                stopping,
                failure_event="dispatcher.step_failed",
                step="_claim_and_dial",
            )
        )
        await settle()
        stopping.set()
        await looping
    assert [(e["step"], e["log_level"]) for e in _events(logs, "dispatcher.step_failed")] == [
        ("_claim_and_dial", "error")
    ]


class CdrFails(FakeStore):
    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]:
        raise StoreUnavailable("down")


async def test_a_cdr_lookup_the_store_failed_settles_the_gone_without_it() -> None:
    clock = FakeClock()
    dispatcher = make_dispatcher(CdrFails(clock=clock), clock=clock, nodes=(FakeNode("n1"),))
    claim = make_claim("n1")
    dispatcher.live.adopted(
        state_of(claim), clock.monotonic() - RECONCILE_MIN_AGE_S - 5, 30, trunk="carrier-a"
    )
    with capture_logs() as logs:
        passing = asyncio.ensure_future(dispatcher.reconciler.reconcile("n1"))
        await clock.advance(10)
        await passing
    assert _events(logs, "dispatch.cdr_lookup_failed")[0]["error"] == "down"
    [settled] = drained_transitions(dispatcher)
    assert settled.attempt_id == claim.attempt_id and settled.status.is_final


class EventsRefused(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.refusals = 1
        self.stored: list[CallEvent] = []

    async def record_events(self, batch: list[CallEvent]) -> int:
        if self.refusals:
            self.refusals -= 1
            raise StoreRefused("invalid input syntax for type uuid")
        self.stored.extend(batch)
        return len(batch)


class QueueDown(FakeSink):
    def enqueue_events(self, batch: list[CallEvent]) -> str:
        raise ConnectionError("Redis is down")


async def test_events_neither_the_queue_nor_the_store_took_are_held_then_stored() -> None:
    store = EventsRefused()
    recorder = EventRecorder(QueueDown(), store.record_events, 100, FakeClock())
    recorder.record(uuid.uuid4(), None, FakeClock().now(), "dispatch.refused", {"node": "n1"})
    with capture_logs() as logs:
        await recorder.flush()
    assert [e["event"] for e in logs] == ["dispatch.events_queue_down", "dispatch.events_not_stored"]
    assert not recorder.waiting() and not store.stored, "held, not lost"
    await recorder.send_held()
    assert [event["type"] for event in store.stored] == ["dispatch.refused"]


class ApplyFailsOnce(FakeStore):
    def __init__(self, error: Exception, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.error: Exception | None = error

    async def apply(self, transitions: Sequence[Change]) -> list[StoredStatus | None]:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return await super().apply(transitions)


@pytest.mark.parametrize("error", [StoreUnavailable("down"), KeyError("idx")])
async def test_a_batch_of_transitions_that_failed_is_kept_whatever_failed(error: Exception) -> None:
    clock = FakeClock()
    store = ApplyFailsOnce(error, clock)
    dispatcher = make_dispatcher(store, clock=clock)
    claim = make_claim("n1")
    dispatcher.transitions.push(Transition(claim.attempt_id, claim.call_id, CallStatus.RINGING, clock.now()))
    with capture_logs() as logs:
        running = asyncio.ensure_future(dispatcher.transitions.run())
        await eventually(lambda: _events(logs, "dispatcher.apply_failed"))
        await clock.advance(1.0)  # RETRY_APPLY_AFTER_S
        await eventually(lambda: store.applied)
        dispatcher.stop()
        await running
    assert [t.attempt_id for t in store.applied] == [claim.attempt_id], "stored on the next turn"
    assert _events(logs, "dispatcher.apply_failed")[0]["count"] == 1


async def test_a_spawned_task_that_fails_is_logged_by_its_last_resort() -> None:
    dispatcher = make_dispatcher()

    async def broken() -> None:
        raise KeyError("node")

    with capture_logs() as logs:
        dispatcher.background.spawn(broken())
        await settle()
    [failed] = _events(logs, "dispatcher.task_failed")
    assert failed["log_level"] == "error" and str(failed["task"]).endswith("broken")
    assert isinstance(failed["exc_info"], KeyError)
