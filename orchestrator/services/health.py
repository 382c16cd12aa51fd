"""The health checks behind /health: PostgreSQL, Redis, the nodes, the dispatchers, the workers.

They run at most once per `cache_s` (≤ 1 s) per API process, by one caller at a time: a crowd
of health probes costs one database connection and one connection per node a second, not
each. What a check reports is its own sentence or an error's type, never an error's text (it
may name hosts, users, paths); the text goes to the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from orchestrator.domain.health import CHECKS, HealthSnapshot, Verdict, verdict
from orchestrator.services.single_flight import SingleFlight

log = structlog.get_logger(__name__)

DISPATCHER_SILENT_AFTER_S = 10.0
"""A dispatcher heartbeats every 2 s: silent this long, it is stopped or stuck."""

DATABASE_WAIT_S = 5.0
"""Longest the checks wait for PostgreSQL (a connection from a busy pool, then the queries)."""

Banner = Callable[[str, int], Awaitable[str | None]]
"""(AMI host, port) → the node's banner, or None when it does not answer."""


class HealthRepository(Protocol):
    async def health_snapshot(self, silent_after_s: float) -> HealthSnapshot: ...


class WorkQueueProbe(Protocol):
    """Redis and its workers (blocking calls: run in a thread)."""

    def ping(self) -> bool: ...

    def worker_count(self) -> int: ...


class CheckFailed(Exception):
    """A check's own verdict, in words fit to show."""


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, dict[str, Any]]
    """Per check: ok, and its time (ms) and detail, or its error."""
    checked_at: datetime
    verdict: Verdict


async def _timed(name: str, check: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await check()
    except CheckFailed as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - whatever breaks a dependency is a failed check, not a 500
        log.warning("api.health_check_failed", check=name, error=repr(exc))
        return {"ok": False, "error": f"{name} check failed ({type(exc).__name__}); see the API log"}
    result: dict[str, Any] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(detail, dict):
        result |= detail
    return result


class HealthChecks:
    def __init__(
        self, store: HealthRepository, queues: WorkQueueProbe, *, banner: Banner, cache_s: float = 1.0
    ) -> None:
        self._store = store
        self._queues = queues
        self._banner = banner
        self._cached: SingleFlight[None, HealthReport] = SingleFlight(cache_s)
        self.runs = 0
        """How many times the checks ran (the /metrics counter sespcl_health_checks_total)."""

    async def report(self) -> HealthReport:
        """The checks' results, at most `cache_s` old."""
        return await self._cached.get(None, self._run)

    async def _run(self) -> HealthReport:
        self.runs += 1
        snapshot = asyncio.ensure_future(
            asyncio.wait_for(self._store.health_snapshot(DISPATCHER_SILENT_AFTER_S), DATABASE_WAIT_S)
        )

        async def postgres() -> None:
            await asyncio.shield(snapshot)

        checked_at = datetime.now(UTC)
        results = await asyncio.gather(
            _timed("postgres", postgres),
            _timed("redis", lambda: asyncio.to_thread(self._queues.ping)),
            _timed("asterisk", lambda: self._nodes(snapshot)),
            _timed("dispatcher", lambda: self._dispatchers(snapshot)),
            _timed("workers", self._workers),
        )
        checks = dict(zip(CHECKS, results))
        return HealthReport(checks=checks, checked_at=checked_at, verdict=verdict(checks))

    @staticmethod
    async def _read(snapshot: asyncio.Future[HealthSnapshot], part: str) -> HealthSnapshot:
        try:
            return await asyncio.shield(snapshot)
        except Exception as exc:  # the postgres check reports (and logs) the error itself
            raise CheckFailed(f"cannot read the {part}: PostgreSQL does not answer") from exc

    async def _nodes(self, snapshot: asyncio.Future[HealthSnapshot]) -> dict[str, Any]:
        nodes = (await self._read(snapshot, "nodes")).nodes
        banners = await asyncio.gather(*(self._banner(n.ami_host, n.ami_port) for n in nodes))
        states = {
            n.name: {"ok": b is not None, "banner": b, "drained": n.drained} for n, b in zip(nodes, banners)
        }
        if not any(s["ok"] for s in states.values()):
            raise CheckFailed("no Asterisk node answers" if states else "no Asterisk node registered")
        return {"nodes": states}

    async def _dispatchers(self, snapshot: asyncio.Future[HealthSnapshot]) -> dict[str, Any]:
        count = (await self._read(snapshot, "dispatchers")).dispatchers
        if count == 0:
            raise CheckFailed(
                f"no dispatcher has reported in {DISPATCHER_SILENT_AFTER_S:.0f} s: nothing is dialed"
            )
        return {"running": count}

    async def _workers(self) -> dict[str, Any]:
        count = await asyncio.to_thread(self._queues.worker_count)
        if count == 0:
            raise CheckFailed("no worker: prompts are not rendered, events not recorded")
        return {"running": count}
