"""The API's access log: a line per request with its method, route template, status, time and
the key's name. Never a body, a query string or a key: the route template, not the path, so a
caller's path text is not written either; ids in the path only when they are ids."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from orchestrator.api.access import PRINCIPAL

log = structlog.get_logger("sespcl.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Probed every second by the watchdog or a load balancer: logged only when they fail.
_PROBES = frozenset({"/health/live"})

# Path parameters worth a field of their own on the line, when they hold a UUID.
_ID_PARAMETERS = {"call_id": "call_id", "campaign_id": "campaign_id"}


def install(app: web.Application) -> None:
    app.middlewares.insert(0, _access_log)  # outermost: the final status, whatever answered it


@web.middleware
async def _access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        _line(request, status, (time.perf_counter() - started) * 1000)


def _line(request: web.Request, status: int, ms: float) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    if route in _PROBES and status < 400:
        return
    principal = request.get(PRINCIPAL)
    fields: dict[str, object] = {
        "method": request.method,
        "route": route,
        "status": status,
        "ms": round(ms, 1),
        "key": principal.name if principal is not None else None,
    }
    for parameter, field in _ID_PARAMETERS.items():
        value = request.match_info.get(parameter)
        if value is not None and _is_uuid(value):
            fields[field] = value
    log.info("api.request", **fields)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36
