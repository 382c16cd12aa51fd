"""GET /health: the status for anyone (load balancers), the checks for a metrics:read key.

The checks themselves, and how often they run, are services/health.py's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orchestrator.api.access import authenticate, bearer_token, require
from orchestrator.api.deps import DEPS
from orchestrator.domain.keys import Scope
from orchestrator.services.health import HealthReport


def present(report: HealthReport) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the full body). 503 when the API cannot take calls (the contract's)."""
    body: dict[str, Any] = {
        "status": report.verdict.status,
        "checks": report.checks,
        "checked_at": report.checked_at.isoformat(),
    }
    if report.verdict.degraded:
        body["degraded"] = list(report.verdict.degraded)
    return (200 if report.verdict.serving else 503), body


async def health(request: web.Request) -> web.Response:
    """Without a key: the status alone. With one: it must hold metrics:read (401 / 403 else)."""
    detail = bearer_token(request) is not None
    if detail:
        require(await authenticate(request), Scope.METRICS_READ, request)
    status, body = present(await request.app[DEPS].health.report())
    return web.json_response(body if detail else {"status": body["status"]}, status=status)


async def live(request: web.Request) -> web.Response:
    """Liveness: answered from the event loop itself, touching nothing else. A loop that never
    yields cannot answer, and the watchdog restarts the process (readiness is /health)."""
    return web.json_response({"status": "alive"})


def install(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
