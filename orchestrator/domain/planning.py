"""Which node takes each new call, and the farm-wide rate: the plan a claim is made from. Pure:
time is passed in."""

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
    allowance: int | None = None
    """Most new calls this node may get in one plan (its pacer's allowance); None: no limit."""

    @property
    def free(self) -> int:
        if not self.up or self.drained:
            return 0
        return max(0, self.max_channels - self.live)

    @property
    def room(self) -> int:
        """New calls this node may get now: free channels, within its allowance."""
        return self.free if self.allowance is None else max(0, min(self.free, self.allowance))


def plan_nodes(loads: list[NodeLoad], wanted: int) -> list[str]:
    """Give each of up to `wanted` new calls to the usable node with the fewest live channels,
    no node more than its `room` (free channels, within its allowance)."""
    heap = [(load.live, load.name, load.room) for load in loads if load.room > 0]
    heapq.heapify(heap)
    plan: list[str] = []
    while heap and len(plan) < wanted:
        live, name, room = heapq.heappop(heap)
        plan.append(name)
        if room > 1:
            heapq.heappush(heap, (live + 1, name, room - 1))
    return plan


def trim_to_room(plan: list[str], room: dict[str, int]) -> list[str]:
    """`plan` (a node per new call) without the calls past each node's free channels across the
    whole farm (`room`; a node missing from it has none), in order. Each dispatcher plans from
    the calls it follows itself; only the database sees every dispatcher's."""
    left = dict(room)
    kept: list[str] = []
    for node in plan:
        if left.get(node, 0) > 0:
            kept.append(node)
            left[node] -= 1
    return kept


def total_room(loads: list[NodeLoad]) -> int:
    """How many new calls `plan_nodes` could place now: what to claim at most."""
    return sum(load.room for load in loads)
