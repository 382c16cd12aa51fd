"""Each node's own pace: how fast it may be sent new calls, from how fast it answers. Pure: time
is passed in."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class PacerSettings:
    """How a `NodePacer` feels for a node's capacity. Defaults fit an Asterisk node whose clean
    Originate latency is ~10 ms and that starts queueing (latency in seconds) past its capacity."""

    initial_rate: float = 20.0
    """Calls/s a node gets before anything is known about it: low enough for the smallest node."""
    min_rate: float = 2.0
    """Floor for decreases: a node stays probed, so it can show it has recovered."""
    max_rate: float = 500.0
    """Ceiling for increases: above what one node can take, so only a safety stop."""
    target_latency_s: float = 0.10
    """Queueing latency (Originate latency above the node's base) over which the pace is cut;
    it stops growing at `hold_above` of this. Clean nodes answer in ~10 ms, and an overloaded
    one in seconds. The first sign is only the first third of a call's way through the node
    (then the INVITE, then the answer, each queueing as much), so Originate → answer runs about
    three times this. The simulated node (tests/unit/test_node_pacer.py) holds 0.98 of its
    capacity at 0.10 with p99 ~100 ms, 0.94-0.97 at 0.15 with ~200 ms, and collapses below
    0.05 (a group's own sends then look like a queue). On this machine at twice a node's clean
    maximum: Originate → answer p99 ~240-340 ms at 0.10 against 470-580 ms at 0.15, for the
    same throughput."""
    latency_quantile: float = 0.9
    """Which quantile of an interval's latencies is compared to the target: high enough to see a
    queue forming, not so high that one slow call halves the rate."""
    interval_s: float = 0.5
    """How often the rate is adjusted: a few dispatcher polls of observations each time."""
    increase: float = 5.0
    """Additive increase, calls/s per interval, once past slow start: +10/s each second, about a
    tenth of a node's capacity, so the rate spends little time above capacity before backing off."""
    recovery: float = 0.5
    """Below the rate the last decrease cut from, the rate grows by this share of the distance
    back to it per interval (at least `increase`), as BIC/CUBIC do: a cut for a passing spike
    (the machine busy for a moment) costs seconds, not the tens additive growth would take. Past
    that rate growth is additive again, probing carefully where the node was last overloaded."""
    hold_above: float = 0.5
    """Between this share of the target and the target the rate holds, neither grown nor cut:
    latency has started to rise, so the node is near its capacity, and probing further only
    deepens the queue that the next cut must drain (a sawtooth whose peaks are the p99)."""
    slow_start: float = 1.2
    """Until the node first shows latency (half the target) the rate grows by this factor per
    interval instead, so a node nears its capacity in seconds (20 -> 100/s in 4.5 s), not tens.
    Gently: the latency that ends it shows an interval or two late, and 1.5 overshot a node
    whose Originates are sent as a steady stream by half its capacity again."""
    decrease: float = 0.8
    """Multiplicative decrease for a latency just over the target. AIMD averages about
    (1 + decrease) / 2 of the rate where it backs off, so 0.8 keeps ~0.9 of capacity where TCP's
    0.5 would waste a quarter of it."""
    deepest_decrease: float = 0.5
    """Further over the target the factor is target / latency, down to this: a deep queue (or a
    node that lost half its capacity) is drained in a step or two, not five."""
    burst_s: float = 0.3
    """Token bucket depth in seconds of rate: covers one dispatcher poll (0.2 s) with slack, no
    more, so an idle node does not get a large burst."""
    busy_fraction: float = 0.75
    """The rate only grows if the node was sent at least this share of its budget in the interval:
    a node that was not pushed has not shown that it can take more. Below it the rate drifts back
    towards what was used (divided by this share), never under `initial_rate`."""
    inflight_factor: float = 2.0
    """Most originates in flight (sent, not yet acknowledged) = rate x (target + base latency) x
    this: twice what a node keeping up would have (Little's law), so a stalled node is not fed
    more."""
    min_inflight: int = 4
    """Floor of the in-flight cap, so a node paced slowly can still take a few at once."""
    base_window_s: float = 60.0
    """The node's latency with no queue (its network round trip, its Originate handling) is the
    lowest interval minimum seen over this long, and only latency above it is taken as
    queueing: a node 80 ms away is paced on its queue like a local one, not held at the
    initial pace for ever by a round trip over half the target."""
    refusal_hold_s: float = 1.0
    """A node that refused to make a channel at all (PJSIP found no usable contact: a carrier it
    took for down after one missed qualify, say) is sent nothing for this long, twice as long
    after each refusal in a row (up to `refusal_hold_max_s`), and then one call at a time, until
    it makes a channel again. Without it the queue is refused as fast as it can be sent."""
    refusal_hold_max_s: float = 8.0
    """Short next to a qualify period (60 s): a node that can dial again is probed within
    seconds of it."""
    forget_after_s: float = 10.0
    """An Originate unanswered this long is taken as lost: one whose answer was missed must not
    hold a slot, nor block increases, for ever. A node silent that long is down for the
    dispatcher anyway (node_lost_after_s)."""

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.initial_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= initial_rate <= max_rate")
        if (
            min(self.target_latency_s, self.interval_s, self.burst_s, self.forget_after_s, self.base_window_s)
            <= 0
        ):
            raise ValueError(
                "target_latency_s, interval_s, burst_s, forget_after_s and base_window_s must be positive"
            )
        if not 0 < self.latency_quantile <= 1 or not 0 < self.deepest_decrease <= self.decrease < 1:
            raise ValueError("need 0 < latency_quantile <= 1 and 0 < deepest_decrease <= decrease < 1")
        if not 0 <= self.recovery <= 1:
            raise ValueError("need 0 <= recovery <= 1")
        if not 0 < self.refusal_hold_s <= self.refusal_hold_max_s:
            raise ValueError("need 0 < refusal_hold_s <= refusal_hold_max_s")
        if not 0 < self.hold_above <= 1:
            raise ValueError("need 0 < hold_above <= 1")
        if self.increase < 0 or self.slow_start < 1 or self.inflight_factor <= 0 or self.min_inflight < 1:
            raise ValueError("increase >= 0, slow_start >= 1, inflight_factor > 0, min_inflight >= 1")


@dataclass(frozen=True)
class PacerState:
    """A pacer's figures for metrics and logs."""

    rate: float
    tokens: float
    outstanding: int
    inflight_cap: int
    latency_s: float
    """The last interval's latency signal: its quantile, or the oldest outstanding's age if more."""
    base_latency_s: float
    """The node's latency with no queue, as last estimated; the pace follows latency above it."""
    slow_start: bool
    increases: int
    decreases: int
    refusals: int = 0
    """Holds in a row for channels the node refused; while above 0 it is held, then probed one
    call at a time."""


class NodePacer:
    """Adaptive (AIMD) pace for one node: how many Originates it may get now.

    Asterisk queues overload rather than refusing it, so the signal is latency: every interval the
    rate grows while the node answers Originates quickly and used its budget, and shrinks by a
    factor once it answers slowly. Originates in flight are capped too, so a stalled node stops
    getting new ones at once instead of after an interval. Pure: every method takes `now` (seconds,
    one monotonic clock), and the caller reports each Originate sent, answered or lost.
    """

    def __init__(self, settings: PacerSettings | None = None, *, now: float) -> None:
        self.settings = settings if settings is not None else PacerSettings()
        self._rate = self.settings.initial_rate
        self._tokens = self._depth()
        self._at = now
        self._window_start = now
        self._sent_in_window = 0
        self._samples: list[tuple[float, float]] = []  # (sent at, latency) answered this interval
        self._in_flight: deque[list[float]] = deque()  # [sent at, count], oldest first
        self._outstanding = 0
        self._hold_until = -math.inf
        self._cut_from = 0.0
        """The pace to grow back to quickly: the rate the last decrease cut from, or the one a
        quiet spell let drift, whichever is higher."""
        self._slow_start = self.settings.slow_start > 1
        self._latency = 0.0
        self._minima: deque[float] = deque(
            maxlen=max(1, round(self.settings.base_window_s / self.settings.interval_s))
        )
        """Each recent interval's lowest latency, for the node's base latency."""
        self._base = 0.0
        self._increases = 0
        self._decreases = 0
        self._refusals = 0
        self._refused_until = -math.inf

    @property
    def rate(self) -> float:
        """Current pace, calls/s."""
        return self._rate

    @property
    def outstanding(self) -> int:
        """Originates sent and not yet answered nor lost."""
        return self._outstanding

    @property
    def inflight_cap(self) -> int:
        s = self.settings
        # A node far away keeps its round trip's worth in flight as well as its queue's.
        return max(
            s.min_inflight, math.ceil(self._rate * (s.target_latency_s + self._base) * s.inflight_factor)
        )

    def allowance(self, now: float) -> int:
        """How many new Originates the node may be sent now."""
        self._advance(now)
        room = max(0, min(int(self._tokens), self.inflight_cap - self._outstanding))
        if self._refusals:  # held, then one probe at a time
            return 0 if now < self._refused_until else min(room, max(0, 1 - self._outstanding))
        return room

    def on_refused(self, now: float) -> None:
        """The node refused to make a channel for an Originate (nothing was dialed)."""
        s = self.settings
        if now < self._refused_until:
            return  # one of the calls sent before the hold began: the hold already counts it
        self._refusals += 1
        hold = min(s.refusal_hold_max_s, s.refusal_hold_s * 2.0 ** (self._refusals - 1))
        self._refused_until = max(self._refused_until, now + hold)

    def on_channel(self) -> None:
        """The node made a channel for a call: it dials again, at its pace."""
        if self._refusals:
            self._refusals = 0
            self._refused_until = -math.inf

    def on_sent(self, count: int, now: float) -> None:
        """`count` Originates were sent to the node at `now`."""
        if count <= 0:
            return
        now = self._advance(now)
        self._tokens -= count
        self._sent_in_window += count
        if self._in_flight and self._in_flight[-1][0] == now:
            self._in_flight[-1][1] += count
        else:
            self._in_flight.append([now, float(count)])
        self._outstanding += count

    def sent(self, now: float) -> None:
        self.on_sent(1, now)

    def on_response(self, latency_s: float, now: float) -> None:
        """The node answered an Originate sent `latency_s` ago (its first sign for that call)."""
        self._advance(now)
        self._samples.append((now - latency_s, latency_s))
        if self._outstanding:
            # Settled oldest first: exact when the node answers in order, and it never leaves a
            # ghost behind that would look like a stall when answers come out of order.
            self._settle()

    def completed(self, sent_at: float, now: float) -> None:
        self.on_response(now - sent_at, now)

    def on_lost(self, now: float, count: int = 1) -> None:
        """`count` Originates will get no answer (link dropped, error): no longer in flight, and
        no latency sample (a stall has already shown as the age of the oldest outstanding)."""
        self._advance(now)
        for _ in range(min(count, self._outstanding)):
            self._settle()

    def state(self, now: float) -> PacerState:
        self._advance(now)
        return PacerState(
            rate=self._rate,
            tokens=self._tokens,
            outstanding=self._outstanding,
            inflight_cap=self.inflight_cap,
            latency_s=self._latency,
            base_latency_s=self._base,
            slow_start=self._slow_start,
            increases=self._increases,
            decreases=self._decreases,
            refusals=self._refusals,
        )

    # ---- internals ---------------------------------------------------------------------------

    def _depth(self) -> float:
        return max(1.0, self._rate * self.settings.burst_s)

    def _settle(self) -> None:
        batch = self._in_flight[0]
        batch[1] -= 1
        if batch[1] <= 0:
            self._in_flight.popleft()
        self._outstanding -= 1

    def _advance(self, now: float) -> float:
        now = max(now, self._at)  # callers' clocks may be read slightly out of order
        self._tokens = min(self._depth(), self._tokens + (now - self._at) * self._rate)
        self._at = now
        while self._in_flight and now - self._in_flight[0][0] > self.settings.forget_after_s:
            self._outstanding -= int(self._in_flight.popleft()[1])
        if now - self._window_start >= self.settings.interval_s:
            self._adjust(now)
        return now

    def _oldest_age(self, now: float, since: float) -> float:
        for sent_at, _count in self._in_flight:
            if sent_at >= since:
                return now - sent_at
        return 0.0

    def _adjust(self, now: float) -> None:
        s = self.settings
        window = now - self._window_start
        # A decrease is judged only on Originates sent after the hold that follows the last one:
        # those sent before (or just after, into the queue it left) show the old rate, and acting
        # on them again would cut the rate once per interval, or per sample, for one overload.
        fresh = [lat for sent_at, lat in self._samples if sent_at >= self._hold_until]
        fresh_signal = max(_quantile(fresh, s.latency_quantile), self._oldest_age(now, self._hold_until))
        # An increase, on everything: the rate grows only when nothing at all is slow.
        signal = max(
            _quantile([lat for _, lat in self._samples], s.latency_quantile),
            self._oldest_age(now, -math.inf),
        )
        self._latency = signal
        if self._samples:
            self._minima.append(min(lat for _, lat in self._samples))
            # At most the target: a node already queueing when first measured (every sample
            # slow) would otherwise take its queue for its base, and never be cut.
            self._base = min(min(self._minima), s.target_latency_s)
        # Queueing only: latency above what the node takes with no queue at all.
        fresh_signal = max(0.0, fresh_signal - self._base)
        signal = max(0.0, signal - self._base)
        if fresh_signal > s.target_latency_s:
            factor = max(s.deepest_decrease, min(s.decrease, s.target_latency_s / fresh_signal))
            self._cut_from = self._rate
            self._rate = max(s.min_rate, self._rate * factor)
            # Hold for about one latency period (the queue it saw takes that long to clear),
            # bounded so that a long stall does not blind the pacer for as long.
            self._hold_until = now + min(fresh_signal, 4 * s.interval_s)
            self._slow_start = False
            self._decreases += 1
        elif self._sent_in_window < s.busy_fraction * self._rate * window:
            # Not pushed: nothing showed the node can take this pace now (it may have been set
            # before an idle spell, or during a burst). Left as it is, the next rush would be sent
            # at it unchecked; it drifts halfway back to what was used instead, each interval, as
            # TCP validates an idle window (RFC 7661), and the next rush probes up from there.
            # The pace it had is remembered: once pushed again, it is back there within a few
            # intervals (as after a cut), not after a whole slow start with a backlog growing.
            used = self._sent_in_window / window / s.busy_fraction
            floor = min(s.initial_rate, self._rate)
            self._cut_from = max(self._cut_from, self._rate)
            self._rate = max(floor, used, (self._rate + used) / 2)
        else:
            if signal > s.target_latency_s / 2:
                self._slow_start = False  # latency has started to rise: close to capacity (HyStart)
            if signal <= s.target_latency_s * s.hold_above:
                if self._rate < self._cut_from:
                    step = max(s.increase, (self._cut_from - self._rate) * s.recovery)
                    grown = min(self._cut_from, self._rate + step)
                elif self._slow_start:
                    grown = self._rate * s.slow_start
                else:
                    grown = self._rate + s.increase
                self._rate = min(s.max_rate, grown)
                self._increases += 1
        self._tokens = min(self._tokens, self._depth())
        self._window_start = now
        self._sent_in_window = 0
        self._samples = []


def _quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
