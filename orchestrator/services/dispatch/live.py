"""The attempts this dispatcher follows, each with everything known about it in one record:
tracked when sent or adopted, forgotten in one place when it ends or goes back to the queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import UUID

from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.pacing import NodePacer
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.meter import DispatchMeter


@dataclass
class LiveAttempt:
    state: AttemptState
    started_at: float
    """Monotonic: when its Originate was sent (adopted: its age, counted back from the adoption)."""
    ring_s: int
    trunk: str
    sent_at: float | None = None
    """Monotonic: when its Originate left, while the node has given no sign of it (its first
    sign, against this, is the node's load signal)."""
    hangup_sent: bool = False
    answered_at: float | None = None
    campaign_id: UUID | None = None
    """Monotonic: when it answered, as this dispatcher saw it (None: not answered, or before
    this dispatcher adopted it)."""

    @property
    def key(self) -> str:
        """The attempt id as the nodes name it: the channel's id, Asterisk's Uniqueid."""
        return str(self.state.attempt_id)

    @property
    def node(self) -> str:
        return self.state.node

    def log_fields(self) -> dict[str, str]:
        """What a log line about the attempt says besides its ids."""
        fields = {"node": self.node, "trunk": self.trunk}
        if self.campaign_id is not None:
            fields["campaign_id"] = str(self.campaign_id)
        return fields


class LiveAttempts:
    """By attempt key. `pacer_of` finds a node's pacer (None once the node is gone): an
    Originate's first sign, or its loss, is reported to the pacer of the node it went to."""

    def __init__(
        self, pacer_of: Callable[[str], NodePacer | None], clock: Clock, meter: DispatchMeter
    ) -> None:
        self._pacer_of = pacer_of
        self._clock = clock
        self._meter = meter
        self._live: dict[str, LiveAttempt] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._live

    def __iter__(self) -> Iterator[LiveAttempt]:
        # A copy: callers await between items, and attempts end meanwhile.
        return iter(list(self._live.values()))

    def get(self, key: str) -> AttemptState | None:
        live = self._live.get(key)
        return live.state if live is not None else None

    def record(self, key: str) -> LiveAttempt | None:
        return self._live.get(key)

    # ---- tracking ----------------------------------------------------------------------------

    def sent(
        self, state: AttemptState, ring_s: int, now: float, *, trunk: str, campaign_id: UUID | None = None
    ) -> None:
        """Its Originate is leaving now: in flight on its node's pacer until the node's first sign."""
        pacer = self._pacer_of(state.node)
        if pacer is not None:
            pacer.on_sent(1, now)
        self._live[str(state.attempt_id)] = LiveAttempt(
            state, now, ring_s, trunk, sent_at=now if pacer is not None else None, campaign_id=campaign_id
        )

    def adopted(
        self,
        state: AttemptState,
        started_at: float,
        ring_s: int,
        *,
        trunk: str,
        campaign_id: UUID | None = None,
    ) -> None:
        self._live[str(state.attempt_id)] = LiveAttempt(
            state, started_at, ring_s, trunk, campaign_id=campaign_id
        )

    def forget(self, key: str) -> None:
        """It ended, or went back to the queue: nothing about it is kept, and an Originate of it
        still in flight no longer holds its node's pacer."""
        self.unacknowledged(key)
        self._live.pop(key, None)

    # ---- the node's first sign of an Originate ----------------------------------------------

    def acknowledged(self, key: str) -> None:
        """The node's first sign of an Originate (its channel exists, or it answered the action):
        the time it took is the node's load signal, ring time excluded."""
        in_flight = self._take_in_flight(key)
        if in_flight is None:
            return
        now = self._clock.monotonic()
        self._meter.originate_acknowledged(in_flight[0], now - in_flight[1])
        pacer = self._pacer_of(in_flight[0])
        if pacer is not None:
            pacer.on_response(now - in_flight[1], now)

    def unacknowledged(self, key: str) -> None:
        """Its Originate will get no sign (an error, a dropped link): no longer in flight."""
        in_flight = self._take_in_flight(key)
        pacer = self._pacer_of(in_flight[0]) if in_flight is not None else None
        if pacer is not None:
            pacer.on_lost(self._clock.monotonic())

    def link_dropped(self, node: str) -> None:
        """Originates in flight on the node's link will never be acknowledged."""
        for live in self:
            if live.node == node and live.sent_at is not None:
                self.unacknowledged(live.key)

    def _take_in_flight(self, key: str) -> tuple[str, float] | None:
        """(node, sent at) of the attempt's Originate if still in flight, which it is no longer."""
        live = self._live.get(key)
        if live is None or live.sent_at is None:
            return None
        sent_at, live.sent_at = live.sent_at, None
        return live.node, sent_at

    # ---- finding attempts -------------------------------------------------------------------

    def on_node(self, node: str) -> list[LiveAttempt]:
        return [live for live in self._live.values() if live.node == node]

    def per_node(self) -> dict[str, int]:
        """How many attempts each node carries."""
        counts: dict[str, int] = {}
        for live in list(self._live.values()):  # a copy: the metrics scrape reads it from its thread
            counts[live.node] = counts.get(live.node, 0) + 1
        return counts

    def old_enough(self, node: str, at: float, min_age_s: float) -> list[str]:
        """Keys of the node's attempts at least `min_age_s` old at `at`."""
        return [live.key for live in self.on_node(node) if at - live.started_at >= min_age_s]

    def overdue(self, now: float, beyond_ring_s: float) -> list[tuple[LiveAttempt, float]]:
        """Attempts live longer than their ring timeout plus `beyond_ring_s`, with that limit."""
        late = []
        for live in self._live.values():
            limit = live.ring_s + beyond_ring_s
            if now - live.started_at > limit:
                late.append((live, limit))
        return late
