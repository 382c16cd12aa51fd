"""The dispatcher's stop signal, and the one-off tasks it starts (Originates, reconcile passes)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Background:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def stopped(self) -> bool:
        return self.stopping.is_set()

    def stop(self) -> None:
        self.stopping.set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Referenced until done: the event loop keeps only a weak reference to a task.
        task = asyncio.ensure_future(coro)
        task.set_name(getattr(coro, "__qualname__", task.get_name()))  # as a failure is logged
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # The last resort of these tasks, as the loop table's wrapper is of the periodic steps:
        # nobody awaits them, so a failure (a bug) would otherwise show only when the task is
        # collected, as asyncio's "exception was never retrieved".
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("dispatcher.task_failed", task=task.get_name(), exc_info=exc)
