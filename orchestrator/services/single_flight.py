"""A value per key, computed by one caller at a time and kept a short while.

Callers that ask while it is being computed wait for that one computation instead of starting
their own: a burst of requests costs one query, not one each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(
        self, ttl_s: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._running: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        kept = self._values.get(key)
        if kept is not None and self._clock() - kept[0] < self._ttl_s:
            return kept[1]
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self._compute(key, compute))
            # Retrieved even when every waiter was canceled: no "exception never retrieved".
            running.add_done_callback(lambda done: done.cancelled() or done.exception())
        # shield: a caller that gives up does not cancel the computation the others wait for.
        return await asyncio.shield(running)

    async def _compute(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        started = self._clock()  # the value is as old as its computation's start
        try:
            value = await compute()
        finally:
            del self._running[key]
        if len(self._values) >= self._max_entries:
            self._values.clear()  # bounded: keys looked up at random must not grow it forever
        self._values[key] = (started, value)
        return value
