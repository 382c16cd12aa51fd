"""Run a step every few seconds until told to stop; a failed step is logged, never fatal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[Any]],
    stopping: asyncio.Event,
    /,  # positional only: `log_fields` may well hold a "step"
    *,
    failure_event: str,
    from_start: bool = False,
    **log_fields: Any,
) -> None:
    """`step()`, then wait `interval_s` (cut short by `stopping`), until `stopping` is set. An
    exception is logged as `failure_event` with its traceback and the loop goes on.
    `from_start`: the interval counts from the step's start, so a step that spends part of it
    (spreading work over the interval) still runs once per interval; a step slower than the
    interval still gets a tenth of it as a pause, so a slow database is not polled back to back."""
    while not stopping.is_set():
        started = time.monotonic()
        try:
            await step()
        except Exception:
            log.exception(failure_event, **log_fields)
        wait_s = max(interval_s / 10, interval_s - (time.monotonic() - started)) if from_start else interval_s
        try:
            await asyncio.wait_for(stopping.wait(), max(0.0, wait_s))
        except TimeoutError:
            pass
