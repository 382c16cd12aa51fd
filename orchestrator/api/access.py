"""Who may call which route: the bearer key, its scope for the route, and its request rate.

401 for a missing, unknown, wrong or revoked key; 403 `forbidden-scope` for a key without the
route's scope; 429 `rate-limited` (Retry-After) over the key's rate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from orchestrator.api.deps import DEPS
from orchestrator.api.errors import ApiError
from orchestrator.domain.keys import Principal, Scope
from orchestrator.services.keys import Unauthenticated

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = None
ROUTE_SCOPES: dict[tuple[str, str], Scope | None] = {
    ("POST", "/v1/calls"): Scope.CALLS_WRITE,
    ("POST", "/v1/calls/{call_id}/cancel"): Scope.CALLS_WRITE,
    ("GET", "/v1/calls"): Scope.CALLS_READ,
    ("GET", "/v1/calls/{call_id}"): Scope.CALLS_READ,
    ("GET", "/v1/calls/{call_id}/events"): Scope.CALLS_READ,
    ("GET", "/v1/calls/{call_id}/webhooks"): Scope.CALLS_READ,
    ("POST", "/v1/campaigns"): Scope.CAMPAIGNS_WRITE,
    ("POST", "/v1/campaigns/{campaign_id}/calls"): Scope.CAMPAIGNS_WRITE,
    ("POST", "/v1/campaigns/{campaign_id}/pause"): Scope.CAMPAIGNS_WRITE,
    ("POST", "/v1/campaigns/{campaign_id}/resume"): Scope.CAMPAIGNS_WRITE,
    ("POST", "/v1/campaigns/{campaign_id}/cancel"): Scope.CAMPAIGNS_WRITE,
    ("POST", "/voice/bulk"): Scope.CAMPAIGNS_WRITE,
    ("GET", "/v1/campaigns"): Scope.CAMPAIGNS_READ,
    ("GET", "/v1/campaigns/{campaign_id}"): Scope.CAMPAIGNS_READ,
    ("GET", "/api/metrics"): Scope.METRICS_READ,
    ("GET", "/metrics"): Scope.METRICS_READ,
    # Its status is public (load balancers); its detail needs metrics:read (api/health.py).
    ("GET", "/health"): PUBLIC,
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
}
"""Every route the API serves (a HEAD is its GET). tests/unit check it against the router."""

KEYED_PREFIXES = ("/v1/", "/voice/")
KEYED_PATHS = ("/v1", "/api/metrics", "/metrics")
"""Paths no route serves here answer 404/405 only to a key holder, as before keys had scopes."""

PRINCIPAL = web.RequestKey("principal", Principal)


def route_scope(request: web.Request) -> tuple[bool, Scope | None]:
    """(whether a key is needed, the scope the route needs: None for any key)."""
    resource = request.match_info.route.resource
    method = "GET" if request.method == "HEAD" else request.method
    if resource is not None and (method, resource.canonical) in ROUTE_SCOPES:
        scope = ROUTE_SCOPES[(method, resource.canonical)]
        return scope is not None, scope
    return request.path.startswith(KEYED_PREFIXES) or request.path in KEYED_PATHS, None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def authenticate(request: web.Request) -> Principal:
    """The request's key, or 401. Failures are logged with the key's name when the token named
    a key (never the token)."""
    token = bearer_token(request)
    if not token:
        log.info("api.auth_failed", reason="no bearer token", method=request.method, path=request.path)
        raise ApiError(401, "unauthorized", "missing or wrong bearer token", "Authorization")
    try:
        principal = await request.app[DEPS].keys.authenticate(token)
    except Unauthenticated as exc:
        log.warning(
            "api.auth_failed", key=exc.name, reason=exc.reason, method=request.method, path=request.path
        )
        message = "this key is revoked" if exc.reason == "revoked" else "missing or wrong bearer token"
        raise ApiError(401, "unauthorized", message, "Authorization") from exc
    request[PRINCIPAL] = principal
    return principal


def require(principal: Principal, scope: Scope, request: web.Request) -> None:
    if not principal.may(scope):
        log.info("api.forbidden_scope", key=principal.name, scope=scope.value, path=request.path)
        raise ApiError(
            403,
            "forbidden-scope",
            f"the key {principal.name} lacks the scope {scope.value} this route needs",
            "Authorization",
        )


def principal(request: web.Request) -> Principal:
    """The key the request was authenticated with (the middleware ran)."""
    return request[PRINCIPAL]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    keyed, scope = route_scope(request)
    if not keyed:
        return await handler(request)
    who = await authenticate(request)
    if scope is not None:
        require(who, scope, request)
    if who.rate_per_s is not None:
        limiter = request.app[DEPS].rate_limiter
        wait = await limiter.retry_after(who.name, who.rate_per_s) if limiter is not None else None
        if wait is not None:
            log.info("api.rate_limited", key=who.name, rate_per_s=who.rate_per_s, retry_after_s=wait)
            raise ApiError(
                429,
                "rate-limited",
                f"the key {who.name} is over its {who.rate_per_s:g} requests a second; retry in {wait} s",
                "Authorization",
                headers={"Retry-After": str(wait)},
            )
    return await handler(request)
