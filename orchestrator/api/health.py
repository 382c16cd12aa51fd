"""GET /health: the status for anyone (load balancers), the checks for a metrics:read key.

The checks run at most once per `cache_s` (≤ 1 s) per API process, by one request at a time:
a crowd of health probes costs one database connection and one connection per node a second,
not each. What a check reports is its own sentence or an error's type, never an error's text
(it may name hosts, users, paths); the text goes to the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from orchestrator.api.access import authenticate, bearer_token, require
from orchestrator.api.deps import DEPS, ApiDeps
from orchestrator.asterisk.probe import ami_banner
from orchestrator.domain.keys import Scope
from orchestrator.services.single_flight import SingleFlight

log = structlog.get_logger(__name__)

DISPATCHER_SILENT_AFTER_S = 10.0
"""A dispatcher heartbeats every 2 s: silent this long, it is stopped or stuck."""

DATABASE_WAIT_S = 5.0
"""Longest the checks wait for PostgreSQL (a connection from a busy pool, then the queries)."""

SERVING_NEEDS = ("postgres", "redis", "asterisk")
"""The checks /health answers 503 for (issue 2); the others only make it "degraded"."""


class CheckFailed(Exception):
    """A check's own verdict, in words fit to show."""


async def _timed(name: str, check: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await check()
    except CheckFailed as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        log.warning("api.health_check_failed", check=name, error=repr(exc))
        return {"ok": False, "error": f"{name} check failed ({type(exc).__name__}); see the API log"}
    result: dict[str, Any] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(detail, dict):
        result |= detail
    return result


class HealthMonitor:
    def __init__(self, deps: ApiDeps, cache_s: float) -> None:
        self._deps = deps
        self._cached: SingleFlight[None, tuple[int, dict[str, Any]]] = SingleFlight(cache_s)
        self.runs = 0
        """How many times the checks ran (the /metrics counter sespcl_health_checks_total)."""

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the full body), at most `cache_s` old."""
        return await self._cached.get(None, self._check)

    async def _check(self) -> tuple[int, dict[str, Any]]:
        self.runs += 1
        deps = self._deps
        snapshot = asyncio.ensure_future(
            asyncio.wait_for(deps.store.health_snapshot(DISPATCHER_SILENT_AFTER_S), DATABASE_WAIT_S)
        )

        async def postgres() -> None:
            await asyncio.shield(snapshot)

        async def read(part: str) -> Any:
            try:
                return (await asyncio.shield(snapshot))[part]
            except Exception as exc:  # the postgres check reports (and logs) the error itself
                raise CheckFailed(f"cannot read the {part}: PostgreSQL does not answer") from exc

        async def nodes() -> dict[str, Any]:
            rows = await read("nodes")
            banners = await asyncio.gather(*(ami_banner(r["ami_host"], r["ami_port"]) for r in rows))
            states = {
                r["name"]: {"ok": b is not None, "banner": b, "drained": r["drained"]}
                for r, b in zip(rows, banners)
            }
            if not any(s["ok"] for s in states.values()):
                raise CheckFailed("no Asterisk node answers" if states else "no Asterisk node registered")
            return {"nodes": states}

        async def dispatchers() -> dict[str, Any]:
            count = await read("dispatchers")
            if count == 0:
                raise CheckFailed(
                    f"no dispatcher has reported in {DISPATCHER_SILENT_AFTER_S:.0f} s: nothing is dialed"
                )
            return {"running": count}

        async def workers() -> dict[str, Any]:
            count = await asyncio.to_thread(deps.queues.worker_count)
            if count == 0:
                raise CheckFailed("no worker: prompts are not rendered, events not recorded")
            return {"running": count}

        checked_at = datetime.now(UTC)
        checks = dict(
            zip(
                ("postgres", "redis", "asterisk", "dispatcher", "workers"),
                await asyncio.gather(
                    _timed("postgres", postgres),
                    _timed("redis", lambda: asyncio.to_thread(deps.queues.ping)),
                    _timed("asterisk", nodes),
                    _timed("dispatcher", dispatchers),
                    _timed("workers", workers),
                ),
            )
        )
        # The status code is the contract's: PostgreSQL, Redis and a node (what taking calls
        # needs; a load balancer must not pull an API that can take them). A silent dispatcher
        # or no worker is reported, as "degraded": calls are taken but wait.
        serving = all(checks[name]["ok"] for name in SERVING_NEEDS)
        degraded = sorted(n for n, c in checks.items() if not c["ok"] and n not in SERVING_NEEDS)
        status = "unavailable" if not serving else "degraded" if degraded else "ok"
        body: dict[str, Any] = {"status": status, "checks": checks, "checked_at": checked_at.isoformat()}
        if degraded:
            body["degraded"] = degraded
        return (200 if serving else 503), body


HEALTH = web.AppKey("health", HealthMonitor)


async def health(request: web.Request) -> web.Response:
    """Without a key: the status alone. With one: it must hold metrics:read (401 / 403 else)."""
    detail = bearer_token(request) is not None
    if detail:
        require(await authenticate(request), Scope.METRICS_READ, request)
    status, body = await request.app[HEALTH].report()
    return web.json_response(body if detail else {"status": body["status"]}, status=status)


async def live(request: web.Request) -> web.Response:
    """Liveness: answered from the event loop itself, touching nothing else. A loop that never
    yields cannot answer, and the watchdog restarts the process (readiness is /health)."""
    return web.json_response({"status": "alive"})


def install(app: web.Application) -> None:
    deps = app[DEPS]
    app[HEALTH] = HealthMonitor(deps, deps.health_cache_s)
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
