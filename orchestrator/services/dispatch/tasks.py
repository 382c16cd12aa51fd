"""The dispatcher's stop signal, and the one-off tasks it starts (Originates, reconcile passes)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def stopped(self) -> bool:
        return self.stopping.is_set()

    def stop(self) -> None:
        self.stopping.set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Referenced until done: the event loop keeps only a weak reference to a task.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
