"""NodePacer: per-node AIMD on Originate latency, and plan_nodes honouring each node's allowance."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from orchestrator.domain.pacing import NodePacer, PacerSettings
from orchestrator.domain.planning import NodeLoad, plan_nodes, total_room

# Additive only (no slow start) and a bucket deep enough for a whole interval, so the tests can
# feed one interval's calls in one go and read the rate change exactly.
AIMD = PacerSettings(
    initial_rate=20.0, slow_start=1.0, burst_s=1.0, interval_s=0.5, increase=5.0, target_latency_s=0.25
)


def _busy_interval(
    pacer: NodePacer,
    start: float,
    latency_s: float,
    *,
    step: float = 0.05,
    carried: list[tuple[float, float]] | None = None,
) -> float:
    """Drive one interval from `start`: send what the pacer allows every `step`, each answered after
    `latency_s`; returns the time the interval ended (the next call there adjusts the rate).
    `carried`: (due, latency) of answers due after the end, kept for the next interval; without
    it they are dropped."""
    pending = carried if carried is not None else []
    now = start
    end = start + pacer.settings.interval_s
    while now < end - 1e-9:
        while pending and pending[0][0] <= now:
            due, latency = pending.pop(0)
            pacer.on_response(latency, due)
        count = pacer.allowance(now)
        pacer.on_sent(count, now)
        pending.extend([(now + latency_s, latency_s)] * count)
        now = round(now + step, 9)
    while pending and pending[0][0] < end:
        due, latency = pending.pop(0)
        pacer.on_response(latency, due)
    return end


def _with_base(settings: PacerSettings, base_s: float = 0.01) -> NodePacer:
    """A pacer at time 0 that has seen the node answer in `base_s` with no queue (one quiet
    interval before): latency above that is what it paces on."""
    pacer = NodePacer(settings, now=-0.5)
    pacer.on_sent(1, -0.5)
    pacer.on_response(base_s, -0.5 + base_s)
    pacer.allowance(0.0)
    assert pacer.state(0.0).base_latency_s == base_s and pacer.rate == settings.initial_rate
    return pacer


def test_rate_grows_additively_while_fast_and_busy() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    now = 0.0
    rates = []
    for _ in range(4):
        now = _busy_interval(pacer, now, latency_s=0.01)
        pacer.allowance(now)  # the interval's end: the rate is adjusted here
        rates.append(pacer.rate)
    assert rates == [25.0, 30.0, 35.0, 40.0]
    assert pacer.state(now).increases == 4 and pacer.state(now).decreases == 0


def test_slow_start_grows_multiplicatively_until_latency_rises() -> None:
    pacer = NodePacer(
        PacerSettings(initial_rate=20.0, slow_start=1.5, burst_s=1.0, target_latency_s=0.25), now=0.0
    )
    now = _busy_interval(pacer, 0.0, latency_s=0.01)
    pacer.allowance(now)
    assert pacer.rate == pytest.approx(30.0)
    # Latency over half the target (but under it): slow start ends, and the rate holds.
    carried: list[tuple[float, float]] = []
    now = _busy_interval(pacer, now, latency_s=0.2, carried=carried)
    pacer.allowance(now)
    assert pacer.rate == pytest.approx(30.0)
    assert pacer.state(now).slow_start is False
    # Fast again (once the slow answers are in): it grows additively from now on.
    for _ in range(2):
        now = _busy_interval(pacer, now, latency_s=0.01, carried=carried)
        pacer.allowance(now)
    assert pacer.rate == pytest.approx(35.0)


def test_latency_between_half_the_target_and_the_target_holds_the_rate() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    now = 0.0
    rates = []
    carried: list[tuple[float, float]] = []
    for latency in (0.01, 0.15, 0.2, 0.24, 0.01, 0.01):
        now = _busy_interval(pacer, now, latency_s=latency, carried=carried)
        pacer.allowance(now)
        rates.append(pacer.rate)
    # The interval after the slow one still hears its answers: it holds too.
    assert rates == [25.0, 25.0, 25.0, 25.0, 25.0, 30.0]
    assert pacer.state(now).decreases == 0


def test_a_node_far_away_is_paced_on_its_queue_not_its_round_trip() -> None:
    # 200 ms from the dispatcher, no queue: over half the target on its own, yet it grows as a
    # local node does; once its queue adds more than the target, it is cut.
    pacer = NodePacer(AIMD, now=0.0)
    carried: list[tuple[float, float]] = []
    now = 0.0
    for _ in range(4):
        now = _busy_interval(pacer, now, latency_s=0.2, carried=carried)
        pacer.allowance(now)
    assert pacer.state(now).base_latency_s == pytest.approx(0.2)
    assert pacer.rate >= 30.0 and pacer.state(now).decreases == 0
    before = pacer.rate
    now = _busy_interval(pacer, now, latency_s=0.2 + 0.3, carried=carried)
    pacer.allowance(now)
    assert pacer.rate < before and pacer.state(now).decreases == 1


def test_a_node_queueing_from_its_first_call_is_still_cut() -> None:
    # No quiet interval to learn its base from: the base is capped at the target, so a node
    # answering in 0.6 s from the start is cut, not taken to be 0.6 s away.
    pacer = NodePacer(AIMD, now=0.0)
    pacer.on_sent(10, 0.0)
    for i in range(10):
        pacer.on_response(0.6, 0.6 + i * 0.01)
    pacer.allowance(0.7)
    assert pacer.rate < AIMD.initial_rate and pacer.state(0.7).decreases == 1


def test_a_pace_not_used_drifts_back_towards_what_was_used() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    now = 0.0
    for _ in range(20):  # pushed and fast: 20 -> 120/s
        now = _busy_interval(pacer, now, latency_s=0.01)
        pacer.allowance(now)
    assert pacer.rate == pytest.approx(120.0)
    # Then 15 calls/interval (30/s, a quarter of the pace): halfway to 30 / 0.75 = 40/s each time.
    rates = []
    for _ in range(3):
        pacer.on_sent(15, now + 0.1)
        for _ in range(15):
            pacer.on_response(0.01, now + 0.11)
        now += 0.5
        pacer.allowance(now)
        rates.append(pacer.rate)
    assert rates == pytest.approx([80.0, 60.0, 50.0])
    # Idle: down to the initial pace, no lower.
    for _ in range(10):
        now += 0.5
        pacer.allowance(now)
    assert pacer.rate == pytest.approx(20.0)
    assert pacer.state(now).decreases == 0
    # Pushed again: back towards the pace it had (120/s) by half the distance each interval.
    rates = []
    for _ in range(4):
        now = _busy_interval(pacer, now, latency_s=0.01)
        pacer.allowance(now)
        rates.append(pacer.rate)
    assert rates == pytest.approx([70.0, 95.0, 107.5, 113.75])


def test_idle_node_does_not_grow() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    for t in range(1, 21):
        assert pacer.allowance(t * 0.5) > 0
    assert pacer.rate == 20.0
    # Pushed at a quarter of its budget: still not evidence that it could take more.
    pacer.on_sent(2, 10.1)
    pacer.on_response(0.01, 10.11)
    pacer.on_response(0.01, 10.11)
    pacer.allowance(10.6)
    assert pacer.rate == 20.0


def test_an_originate_never_answered_is_forgotten() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    pacer.on_sent(1, 0.0)  # its answer is missed
    pacer.allowance(0.5)
    assert pacer.rate < 20.0  # looked like a stall
    assert pacer.outstanding == 1
    pacer.allowance(AIMD.forget_after_s + 0.1)
    assert pacer.outstanding == 0  # no slot held, and no longer blocks increases
    now = _busy_interval(pacer, 11.0, latency_s=0.01)
    before = pacer.rate
    pacer.allowance(now)
    assert pacer.rate == before + AIMD.increase


def test_one_slow_interval_decreases_once() -> None:
    pacer = _with_base(AIMD)
    pacer.on_sent(10, 0.0)
    for i in range(10):  # every sample of the interval is slow
        pacer.on_response(0.4, 0.4 + i * 0.01)
    pacer.allowance(0.5)
    after_first = pacer.rate
    # target / queueing = 0.25 / 0.39, within [deepest_decrease, decrease]: a proportional cut, once.
    assert after_first == pytest.approx(20.0 * 0.25 / 0.39)
    # Calls sent during the hold queue behind the overload that caused the cut: that they are
    # slow too, answered or not, does not cut again.
    pacer.on_sent(5, 0.55)
    pacer.on_response(0.38, 0.93)
    pacer.allowance(1.0)
    assert pacer.rate == after_first
    assert pacer.state(1.0).decreases == 1


def test_mildly_slow_interval_cuts_by_decrease_factor() -> None:
    pacer = _with_base(AIMD)
    pacer.on_sent(10, 0.0)
    for i in range(10):
        pacer.on_response(0.27, 0.27 + i * 0.01)
    pacer.allowance(0.5)
    assert pacer.rate == pytest.approx(20.0 * AIMD.decrease)


def test_after_a_passing_spike_the_rate_returns_quickly_then_probes_additively() -> None:
    pacer = NodePacer(PacerSettings(initial_rate=100.0, slow_start=1.0, burst_s=1.0), now=0.0)
    pacer.on_sent(10, 0.0)
    for _ in range(10):  # one slow interval (a spike): the deepest cut
        pacer.on_response(0.5, 0.5)
    pacer.allowance(0.5)
    assert pacer.rate == pytest.approx(50.0)
    now, rates = 1.0, []  # the hold (0.5 s) passes
    for _ in range(6):
        now = _busy_interval(pacer, now, latency_s=0.01)
        pacer.allowance(now)
        rates.append(round(pacer.rate, 2))
    # Half the way back each interval (+5/s a time would take 10 intervals) up to the rate it
    # was cut from; past it, additive again.
    assert rates == [75.0, 87.5, 93.75, 98.75, 100.0, 105.0]


def test_slow_again_after_the_hold_decreases_again() -> None:
    pacer = _with_base(AIMD)
    pacer.on_sent(4, 0.0)
    for _ in range(4):
        pacer.on_response(0.3, 0.3)
    pacer.allowance(0.5)  # cut once; hold until 0.5 + 0.3
    first = pacer.rate
    pacer.on_sent(4, 0.85)  # sent after the hold and still slow: the cut was not enough
    for _ in range(4):
        pacer.on_response(0.3, 1.15)
    pacer.allowance(1.2)
    assert pacer.rate == pytest.approx(first * AIMD.decrease)


def test_a_few_slow_calls_under_the_quantile_do_not_cut() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    pacer.on_sent(20, 0.0)
    for i in range(20):  # one slow answer in twenty: p90 stays fast
        pacer.on_response(0.9 if i == 0 else 0.01, 0.01 + i * 0.02)
    pacer.allowance(0.5)
    assert pacer.rate >= 20.0


def test_stall_decreases_before_anything_completes() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    pacer.on_sent(8, 0.1)
    assert pacer.outstanding == 8
    pacer.allowance(0.5)  # the oldest is 0.4 s old: slower than the target with no answer at all
    assert pacer.rate < 20.0
    assert pacer.state(0.5).latency_s == pytest.approx(0.4)
    cut = pacer.rate
    # Still stalled, and nothing new went out: no further cut for the same stuck calls.
    pacer.allowance(1.0)
    assert pacer.rate == cut


def test_in_flight_cap_limits_allowance() -> None:
    settings = PacerSettings(initial_rate=100.0, burst_s=1.0, inflight_factor=2.0, target_latency_s=0.25)
    pacer = NodePacer(settings, now=0.0)
    cap = pacer.inflight_cap
    assert cap == 50  # 100/s x 0.25 s x 2
    assert pacer.allowance(0.0) == 50  # tokens (100) would allow more
    pacer.on_sent(40, 0.0)
    assert pacer.allowance(0.05) == 10
    pacer.on_sent(10, 0.05)
    assert pacer.allowance(0.1) == 0  # tokens left, but nothing more for a node not answering
    for _ in range(5):
        pacer.on_response(0.1, 0.1)
    assert pacer.allowance(0.1) == 5
    pacer.on_lost(0.1, count=45)
    assert pacer.outstanding == 0


def test_a_node_that_refuses_channels_is_held_then_probed_one_call_at_a_time() -> None:
    pacer = NodePacer(PacerSettings(initial_rate=100.0, refusal_hold_s=1.0, refusal_hold_max_s=4.0), now=0.0)
    assert pacer.allowance(0.2) > 1
    for _ in range(20):  # a whole poll's calls, all refused: one hold, not twenty
        pacer.on_refused(0.2)
    assert pacer.state(0.2).refusals == 1
    assert pacer.allowance(0.5) == 0 and pacer.allowance(1.1) == 0, "held for the first second"
    assert pacer.allowance(1.3) == 1, "then one probe"
    pacer.on_sent(1, 1.3)
    assert pacer.allowance(1.35) == 0, "only one probe in flight"
    pacer.on_response(0.01, 1.31)
    pacer.on_refused(1.31)  # the probe is refused too: held twice as long
    assert pacer.allowance(3.2) == 0 and pacer.allowance(3.4) == 1
    for at in (3.4, 7.5, 11.6):  # each probe refused in turn
        pacer.on_refused(at)
    assert pacer.allowance(15.5) == 0 and pacer.allowance(15.7) == 1, "the hold stops growing at its maximum"
    assert pacer.state(15.7).refusals == 5
    pacer.on_channel()  # the probe made a channel: the node dials again, at its pace
    assert pacer.allowance(15.8) > 1 and pacer.state(15.8).refusals == 0


def test_tokens_pace_at_the_rate() -> None:
    pacer = NodePacer(PacerSettings(initial_rate=20.0, burst_s=0.3, target_latency_s=0.25), now=0.0)
    assert pacer.allowance(0.0) == 6  # bucket depth: 0.3 s of rate
    pacer.on_sent(6, 0.0)
    pacer.on_lost(0.0, count=6)
    assert pacer.allowance(0.1) == 2
    assert pacer.allowance(5.0) == 6  # an idle node gets no bigger burst than the depth


def test_bounds_are_respected() -> None:
    low = NodePacer(PacerSettings(initial_rate=4.0, min_rate=3.0, slow_start=1.0), now=0.0)
    low.on_sent(2, 0.0)
    low.on_response(0.45, 0.45)
    low.on_response(0.45, 0.45)
    low.allowance(0.5)  # target / latency would make it 2.2/s
    assert low.rate == 3.0
    high = NodePacer(PacerSettings(initial_rate=20.0, max_rate=22.0, slow_start=1.0, burst_s=1.0), now=0.0)
    now = 0.0
    for _ in range(3):
        now = _busy_interval(high, now, latency_s=0.01)
        high.allowance(now)
    assert high.rate == 22.0
    with pytest.raises(ValueError):
        PacerSettings(initial_rate=1.0, min_rate=2.0)
    with pytest.raises(ValueError):
        PacerSettings(decrease=0.4, deepest_decrease=0.5)


def test_state_reports_figures() -> None:
    pacer = NodePacer(AIMD, now=0.0)
    pacer.on_sent(3, 0.0)
    state = pacer.state(0.1)
    assert state.rate == 20.0 and state.outstanding == 3 and state.inflight_cap == pacer.inflight_cap
    assert state.slow_start is False and state.increases == state.decreases == 0


# ---- plan_nodes with allowances --------------------------------------------------------------


def test_plan_respects_allowance_and_prefers_least_loaded() -> None:
    loads = [
        NodeLoad("n1", live=5, max_channels=100, up=True, drained=False, allowance=10),
        NodeLoad("n2", live=0, max_channels=100, up=True, drained=False, allowance=2),
        NodeLoad("n3", live=3, max_channels=4, up=True, drained=False, allowance=10),  # 1 free channel
        NodeLoad("n4", live=0, max_channels=100, up=False, drained=False, allowance=10),
    ]
    assert total_room(loads) == 10 + 2 + 1
    plan = plan_nodes(loads, total_room(loads))
    assert plan.count("n1") == 10 and plan.count("n2") == 2 and plan.count("n3") == 1
    # Fewest live first: n2 (0, 1), then n3 (3), before n1 (5) and the rest of n1.
    assert plan[:3] == ["n2", "n2", "n3"]
    few = plan_nodes(loads, 3)
    assert few == ["n2", "n2", "n3"]


def test_plan_zero_allowance_and_unlimited() -> None:
    loads = [
        NodeLoad("n1", live=0, max_channels=10, up=True, drained=False, allowance=0),
        NodeLoad("n2", live=8, max_channels=10, up=True, drained=False),  # None: channels only
    ]
    assert plan_nodes(loads, 5) == ["n2", "n2"]
    assert total_room(loads) == 2


# ---- a simulated node offered twice its capacity ---------------------------------------------


@dataclass
class QueueingNode:
    """One Asterisk node as a FIFO server: ~10 ms per Originate below `capacity` calls/s, and a
    queue, so latency grows without bound, above it. Under a deep queue it also gets slower, as
    Asterisk does (offered 200/s it answers fewer than offered 150/s)."""

    capacity: float
    rng: random.Random
    free_at: float = 0.0
    answers: list[tuple[float, float]] = field(default_factory=list)  # heap of (answered at, latency)

    def originate(self, now: float) -> None:
        start = max(now, self.free_at)
        service = self.rng.uniform(0.5, 1.5) / self.capacity
        service *= 1 + 0.7 * min(1.0, max(0.0, start - now - 0.3) / 2.0)
        self.free_at = start + service
        answered = self.free_at + 0.01
        heapq.heappush(self.answers, (answered, answered - now))


@pytest.mark.parametrize("capacity", [125.0, 250.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pacer_holds_an_overloaded_node_near_capacity(capacity: float, seed: int) -> None:
    settings = PacerSettings()
    pacer = NodePacer(settings, now=0.0)
    node = QueueingNode(capacity, random.Random(seed))
    rng = random.Random(seed + 100)
    backlog = 0.0
    sent: list[tuple[float, int]] = []
    latencies: list[float] = []
    now, duration, warm_up = 0.0, 90.0, 30.0
    while now < duration:
        while node.answers and node.answers[0][0] <= now:
            at, latency = heapq.heappop(node.answers)
            pacer.on_response(latency, at)
            latencies.append(latency)
        backlog += 2 * capacity * 0.2  # offered twice the capacity
        # The dispatcher as it is: every ~0.2 s, all it may send, in 4 groups over 0.15 s.
        count = min(int(backlog), pacer.allowance(now))
        backlog -= count
        for group in range(4):
            at = now + group * 0.05
            while node.answers and node.answers[0][0] <= at:
                answered, latency = heapq.heappop(node.answers)
                pacer.on_response(latency, answered)
                latencies.append(latency)
            share = count // 4 + (1 if group < count % 4 else 0)
            pacer.on_sent(share, at)
            for _ in range(share):
                node.originate(at)
            sent.append((at, share))
        now += 0.2 * rng.uniform(0.8, 1.2)
    admitted = sum(n for at, n in sent if at >= warm_up) / (duration - warm_up)
    assert 0.85 * capacity <= admitted <= 1.0 * capacity
    p99 = sorted(latencies)[int(0.99 * len(latencies))]  # the whole run, slow start included
    assert p99 < 2 * settings.target_latency_s
    assert backlog > capacity * duration * 0.5  # it really was offered twice what it can take
