"""Per-process resources for jobs, built once by the worker's entry point (`sespcl worker`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import DictRow

from orchestrator.config import Settings, get_settings
from orchestrator.persistence.db import connect


@dataclass
class WorkerContext:
    settings: Settings
    db: psycopg.Connection[DictRow]
    observe_render: Callable[[float], None] = field(default=lambda seconds: None)
    """Told each prompt's render time, in seconds (the worker's metrics)."""


_context: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _context
    _context = context


def current() -> WorkerContext:
    """The context the entry point installed; a job run elsewhere (rq's own CLI) builds one."""
    global _context
    if _context is None:
        settings = get_settings()
        _context = WorkerContext(settings=settings, db=connect(settings.database_url, "sespcl-worker"))
    elif _context.db.closed or _context.db.broken:
        _context.db = connect(_context.settings.database_url)
    return _context
