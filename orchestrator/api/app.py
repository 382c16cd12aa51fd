"""aiohttp application: routes, auth, error handling. Handlers parse, call a service, present."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import UUID

import structlog
from aiohttp import web
from pydantic import ValidationError

from orchestrator.api import access_log, campaigns, health, prometheus, webhooks
from orchestrator.api.access import auth_middleware, principal
from orchestrator.api.deps import DEPS, ApiDeps
from orchestrator.api.errors import ApiError, error_response, from_domain
from orchestrator.api.idempotency import idempotency_key
from orchestrator.api.parsing import json_body, validation_error
from orchestrator.api.presenters import call_json, event_json, farm_json
from orchestrator.api.schemas import CallIn
from orchestrator.api.two_way import validation_context
from orchestrator.domain.errors import SespclError

log = structlog.get_logger(__name__)

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
        if exc.status == 408:
            response.force_close()  # the rest of a stalled body is not waited for on this connection
        return response
    except SespclError as exc:
        return from_domain(exc)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, "no-such-route", f"no route {request.method} {request.path}")
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response = error_response(405, "method-not-allowed", f"{request.method} is not allowed here")
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        raise
    except ConnectionResetError:
        # The client went away mid-request (an upload cut off): nobody to answer, and not a fault
        # of ours. Nothing of it is stored: an upload is one transaction, rolled back here.
        log.info("api.client_gone", method=request.method, path=request.path)
        return error_response(400, "client-gone", "the connection was closed before the request was read")
    except Exception:  # noqa: BLE001 - the last resort: a bug is a logged 500, never a dropped connection
        log.exception("api.unhandled", path=request.path)
        return error_response(500, "internal-error", "internal error; see the API log")


def _call_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["call_id"])
    except ValueError as exc:
        raise ApiError(404, "no-such-call", "no call with that id") from exc


async def create_call(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed-json", "the body must be a JSON object")
    try:
        parsed = CallIn.model_validate(body, context=validation_context(deps.webhook_allow))
    except ValidationError as exc:
        raise validation_error(exc) from exc
    key = idempotency_key(request)
    who = principal(request)
    call, created = await deps.calls.submit(
        parsed.to_request(idempotency_key=key, created_by=who.name, destinations=who.destinations)
    )
    location = f"/v1/calls/{call['id']}"
    return web.json_response(
        call_json(call, []), status=202 if created else 200, headers={"Location": location}
    )


async def get_call(request: web.Request) -> web.Response:
    call, attempts = await request.app[DEPS].calls.get(_call_id(request))
    return web.json_response(call_json(call, attempts))


async def get_call_events(request: web.Request) -> web.Response:
    events = await request.app[DEPS].calls.events(_call_id(request))
    return web.json_response({"events": [event_json(e) for e in events]})


async def cancel_call(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    call_id = _call_id(request)
    await deps.calls.cancel(call_id)
    call, attempts = await deps.calls.get(call_id)
    return web.json_response(call_json(call, attempts))


async def metrics(request: web.Request) -> web.Response:
    return web.json_response(farm_json(await request.app[DEPS].metrics.overview()))


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_PATH.read_bytes(), content_type="application/json")


def create_app(deps: ApiDeps) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware], client_max_size=deps.max_body_bytes + 1
    )
    app[DEPS] = deps
    app.router.add_post("/v1/calls", create_call)
    app.router.add_get("/v1/calls/{call_id}", get_call)
    app.router.add_get("/v1/calls/{call_id}/events", get_call_events)
    app.router.add_post("/v1/calls/{call_id}/cancel", cancel_call)
    webhooks.register(app)
    health.install(app)
    app.router.add_get("/api/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    campaigns.register(app)
    prometheus.install(app)
    access_log.install(app)
    return app
