"""A queue taken in batches, where a batch that could not be stored goes back to the front."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class OrderedBatches(Generic[T]):
    """Items come out in the order they were put, a batch at a time. A batch handed back with
    `put_back` is the start of the next batch, before anything put since: transitions of one call
    must be stored in order, and the store refuses a status that comes after a later one."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._held: list[T] = []

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    def __len__(self) -> int:
        return len(self._held) + self._queue.qsize()

    async def take(self, wait_s: float, gather_s: float) -> list[T]:
        """The next batch: empty if nothing came within `wait_s`. Once something is there, waits
        `gather_s` more so that one transaction stores many; at most `limit` items, unless a batch
        handed back was larger."""
        if not self._held:
            try:
                self._held.append(await asyncio.wait_for(self._queue.get(), wait_s))
            except TimeoutError:
                return []
        if gather_s > 0:
            await asyncio.sleep(gather_s)
        batch, self._held = self._held, []
        while len(batch) < self._limit and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    def drain(self) -> list[T]:
        """Everything left, in order, without waiting (at a stop)."""
        items, self._held = self._held, []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    def put_back(self, batch: list[T]) -> None:
        """`batch`, as taken, was not stored: it comes out first next time."""
        self._held = batch + self._held
