"""The dispatcher's Prometheus figures, as one attempt goes through its node's events: each
timing measured from the right moment, counters by trunk, node and outcome, a retry not
counted as a finished call, and only DTMF keys and known verdicts as labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    ChannelRinging,
    DigitsPressed,
    MachineVerdict,
)
from orchestrator.domain.facts import Change
from orchestrator.domain.records import StoredStatus
from orchestrator.observability.dispatch_metrics import DispatcherGauges, PrometheusDispatchMeter
from orchestrator.services.dispatch import Dispatcher
from orchestrator.services.dispatch.settings import PING_FAILURES_DOWN
from tests.unit.factories import make_claim, state_of
from tests.unit.fakes import FakeClock, FakeNode, FakeStore, make_dispatcher

TRUNK = "carrier-east"


class RetryingStore(FakeStore):
    """Every final attempt is retried: the call goes back to the queue."""

    async def apply(self, transitions: Sequence[Change]) -> list[StoredStatus | None]:
        stored = await super().apply(transitions)
        return [
            StoredStatus(CallStatus.QUEUED) if isinstance(t, Transition) and t.status.is_final else s
            for t, s in zip(transitions, stored)
        ]


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def _call(dispatcher: Dispatcher, clock: FakeClock, *, answer: bool, cause: int) -> str:
    claim = make_claim("n1")
    key = str(claim.attempt_id)
    dispatcher.live.sent(state_of(claim), claim.ring_timeout_s, clock.monotonic(), trunk=TRUNK)

    def event_at() -> datetime:
        return datetime.now(UTC)

    await clock.advance(0.08)
    dispatcher.on_node_event("n1", ChannelCreated(attempt_id=key, at=event_at(), channel="PJSIP/x-1"))
    await clock.advance(1.0)
    dispatcher.on_node_event("n1", ChannelRinging(attempt_id=key, at=event_at(), state="Ringing"))
    if answer:
        await clock.advance(2.0)
        dispatcher.on_node_event("n1", ChannelAnswered(attempt_id=key, at=event_at(), state="Up"))
        verdict = MachineVerdict(attempt_id=key, at=event_at(), name="amd", status="HUMAN", cause="HUMAN-1-1")
        dispatcher.on_node_event("n1", verdict)
        await clock.advance(12.0)
        pressed = DigitsPressed(attempt_id=key, at=event_at(), name="digits", digits="1#9")
        dispatcher.on_node_event("n1", pressed)
    dispatcher.on_node_event("n1", ChannelHungUp(attempt_id=key, at=event_at(), cause=cause))
    await dispatcher.transitions.store_what_is_left()
    return key


async def test_an_answered_call_is_timed_and_counted_by_trunk_and_node() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    dispatcher = make_dispatcher(
        clock=clock, nodes=(FakeNode("n1"),), meter=PrometheusDispatchMeter(registry)
    )
    await _call(dispatcher, clock, answer=True, cause=16)

    assert _value(registry, "sespcl_originate_latency_seconds_count", node="n1") == 1
    assert _value(registry, "sespcl_originate_latency_seconds_sum", node="n1") == pytest.approx(0.08)
    assert _value(registry, "sespcl_answer_latency_seconds_sum", trunk=TRUNK) == pytest.approx(3.08)
    assert _value(registry, "sespcl_call_duration_seconds_sum", trunk=TRUNK) == pytest.approx(12.0)
    assert _value(registry, "sespcl_call_attempts_total", trunk=TRUNK, node="n1", outcome="completed") == 1
    assert _value(registry, "sespcl_calls_finished_total", trunk=TRUNK, status="completed") == 1
    # "1#9": the keys as pressed; each key counted once.
    assert [_value(registry, "sespcl_digits_total", digit=d) for d in "19#"] == [1, 1, 1]
    assert _value(registry, "sespcl_answered_by_total", answered_by="human") == 1


async def test_a_retried_attempt_counts_but_its_call_has_not_finished() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    dispatcher = make_dispatcher(
        RetryingStore(), clock=clock, nodes=(FakeNode("n1"),), meter=PrometheusDispatchMeter(registry)
    )
    await _call(dispatcher, clock, answer=False, cause=17)

    assert _value(registry, "sespcl_call_attempts_total", trunk=TRUNK, node="n1", outcome="busy") == 1
    assert _value(registry, "sespcl_calls_finished_total", trunk=TRUNK, status="busy") == 0
    assert _value(registry, "sespcl_answer_latency_seconds_count", trunk=TRUNK) == 0
    assert _value(registry, "sespcl_call_duration_seconds_count", trunk=TRUNK) == 0


def test_only_dtmf_keys_and_known_verdicts_become_labels() -> None:
    registry = CollectorRegistry()
    meter = PrometheusDispatchMeter(registry)
    meter.digits("4x\n2")
    meter.answered_by("machine_end_beep")
    meter.answered_by("robot; DROP")
    families = {f.name: f for f in registry.collect()}
    assert {s.labels["digit"] for s in families["sespcl_digits"].samples if s.name.endswith("_total")} == {
        "4",
        "2",
    }
    verdicts = {
        s.labels["answered_by"] for s in families["sespcl_answered_by"].samples if s.name.endswith("_total")
    }
    assert verdicts == {"machine_end_beep"}


async def test_node_gauges_show_each_node_as_this_dispatcher_sees_it() -> None:
    clock = FakeClock()
    dispatcher = make_dispatcher(clock=clock, nodes=(FakeNode("n1"), FakeNode("n2")))
    silent = dispatcher.nodes.get("n2")
    assert silent is not None
    silent.health.ping_failures = PING_FAILURES_DOWN  # it hangs: its pings go unanswered
    for _ in range(3):
        claim = make_claim("n1")
        dispatcher.live.sent(state_of(claim), claim.ring_timeout_s, clock.monotonic(), trunk=TRUNK)
    dispatcher.recorder.record(make_claim("n1").call_id, None, datetime.now(UTC), "dispatch.claimed", {})
    registry = CollectorRegistry()
    registry.register(DispatcherGauges(dispatcher.node_views, dispatcher.recorder.depth))

    assert _value(registry, "sespcl_node_up", node="n1") == 1
    assert _value(registry, "sespcl_node_up", node="n2") == 0
    assert _value(registry, "sespcl_node_live_channels", node="n1") == 3
    assert _value(registry, "sespcl_node_live_channels", node="n2") == 0
    assert _value(registry, "sespcl_node_pace_cps", node="n1") == dispatcher.nodes.pacer_of("n1").rate  # type: ignore[union-attr]
    assert _value(registry, "sespcl_events_outbox_depth") == 1
