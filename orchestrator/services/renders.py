"""Handing renders to the workers once the calls that need them are stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from orchestrator.domain.errors import QueueUnavailable

log = structlog.get_logger(__name__)


async def enqueue_renders_stored(enqueue: Callable[[Any], None], what: Any) -> None:
    """The calls are committed: a Redis that fails now must not turn that into an error (a
    client would send them again, and they would be called twice). The prompt stays pending in
    PostgreSQL and the dispatcher's sweep for lost renders enqueues it within seconds."""
    try:
        await asyncio.to_thread(enqueue, what)
    except QueueUnavailable as exc:
        log.warning("render.enqueue_failed", error=str(exc), note="the render sweep will enqueue it")
