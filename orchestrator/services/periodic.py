"""Run a step every few seconds until told to stop; a failed step is logged, never fatal."""

from __future__ import annotations

import asyncio
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
    **log_fields: Any,
) -> None:
    """`step()`, then wait `interval_s` (cut short by `stopping`), until `stopping` is set. An
    exception is logged as `failure_event` with its traceback and the loop goes on."""
    while not stopping.is_set():
        try:
            await step()
        except Exception:
            log.exception(failure_event, **log_fields)
        try:
            await asyncio.wait_for(stopping.wait(), interval_s)
        except TimeoutError:
            pass
