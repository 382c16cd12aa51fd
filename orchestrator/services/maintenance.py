"""Keeps PostgreSQL's tables vacuumed and analyzed when the server's autovacuum is off."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from orchestrator.domain.maintenance import TableActivity, Upkeep, upkeep_due
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)


class UpkeepStore(Protocol):
    async def autovacuum_on(self) -> bool: ...

    async def activity(self) -> list[TableActivity]: ...

    async def run(self, work: list[tuple[str, Upkeep]]) -> list[tuple[str, Upkeep, float]] | None: ...


class TableKeeper:
    """Every `interval_s`: if the server's autovacuum is off, VACUUM or ANALYZE the tables that
    autovacuum's own rule says are due. With autovacuum on it does nothing but look again."""

    def __init__(self, store: UpkeepStore, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._stopping = asyncio.Event()
        self._warned = False

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if self._interval_s > 0:
            await every(self._interval_s, self.step, self._stopping, failure_event="db.upkeep_failed")

    async def step(self) -> list[tuple[str, Upkeep, float]]:
        if await self._store.autovacuum_on():
            self._warned = False
            return []
        if not self._warned:
            log.warning("db.autovacuum_off", note="the dispatcher vacuums and analyzes the tables itself")
            self._warned = True
        work = [(a.table, due) for a in await self._store.activity() if (due := upkeep_due(a)) is not None]
        if not work:
            return []
        done = await self._store.run(work) or []
        for table, upkeep, seconds in done:
            log.info("db.upkeep", table=table, upkeep=upkeep.value, ms=round(seconds * 1000, 1))
        return done
