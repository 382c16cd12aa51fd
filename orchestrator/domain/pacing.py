"""Pacing and node choice for the dispatcher. Pure: time is passed in."""

from __future__ import annotations

import heapq
from dataclasses import dataclass


class TokenBucket:
    """At most `rate` per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float | None = None, *, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._at = now

    def available(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens)

    def take(self, count: int, now: float) -> None:
        self._refill(now)
        self._tokens -= count

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._at = now


@dataclass(frozen=True)
class NodeLoad:
    name: str
    live: int
    max_channels: int
    up: bool
    drained: bool

    @property
    def free(self) -> int:
        if not self.up or self.drained:
            return 0
        return max(0, self.max_channels - self.live)


def plan_nodes(loads: list[NodeLoad], wanted: int) -> list[str]:
    """Give each of up to `wanted` new calls to the usable node with the fewest live channels."""
    heap = [(load.live, load.name, load.free) for load in loads if load.free > 0]
    heapq.heapify(heap)
    plan: list[str] = []
    while heap and len(plan) < wanted:
        live, name, free = heapq.heappop(heap)
        plan.append(name)
        if free > 1:
            heapq.heappush(heap, (live + 1, name, free - 1))
    return plan
