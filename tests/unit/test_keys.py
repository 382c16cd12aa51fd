"""API keys: their form and hash, who a token is (cached, revocable), and the scope, 401/403/429
of every route through the real middlewares."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.access import ROUTE_SCOPES
from orchestrator.api.app import create_app
from orchestrator.api.deps import ApiDeps
from orchestrator.api.errors import ApiError
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.errors import Unavailable
from orchestrator.domain.keys import (
    BOOTSTRAP,
    Principal,
    Scope,
    check_key_name,
    key_digest,
    key_id,
    key_matches,
    new_key,
    parse_scopes,
)
from orchestrator.services.keys import TOUCH_EVERY_S, Authenticator, Unauthenticated
from tests.unit.api_fakes import api_deps

BOOTSTRAP_KEY = "b" * 32


def test_a_new_key_is_found_by_its_id_and_proved_by_its_hash() -> None:
    made = new_key()
    assert made.key.startswith(f"sespcl_{made.id}_") and len(made.key) == 7 + 16 + 1 + 43
    assert key_id(made.key) == made.id
    assert made.digest == key_digest(made.key) and len(made.digest) == 32
    assert key_matches(made.key, made.digest)
    forged = made.key[:-1] + ("A" if made.key[-1] != "A" else "B")
    assert key_id(forged) == made.id and not key_matches(forged, made.digest)
    assert new_key().key != made.key
    for not_a_key in ("", BOOTSTRAP_KEY, f"sespcl_{made.id}", made.key + "x", made.key.upper()):
        assert key_id(not_a_key) is None


def test_scopes_and_names() -> None:
    assert parse_scopes("calls:read, calls:write") == {Scope.CALLS_READ, Scope.CALLS_WRITE}
    with pytest.raises(ValueError, match="unknown scope 'calls:delete'"):
        parse_scopes("calls:read,calls:delete")
    with pytest.raises(ValueError):
        parse_scopes("")
    assert Principal("ops", frozenset({Scope.ADMIN}), None).may(Scope.METRICS_READ)
    assert not Principal("ro", frozenset({Scope.CALLS_READ}), None).may(Scope.CALLS_WRITE)
    assert check_key_name("billing-2") == "billing-2"
    for bad in ("Billing", "2fa", "bootstrap", "x" * 41, "a b"):
        with pytest.raises(ValueError):
            check_key_name(bad)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keys:
    """The key table, counting the lookups."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.lookups = 0
        self.touched: list[str] = []

    def add(self, name: str, scopes: set[Scope], rate: float = 50.0, **policy: Any) -> str:
        made = new_key()
        self.rows[made.id] = {
            "id": made.id,
            "name": name,
            "key_hash": made.digest,
            "scopes": sorted(s.value for s in scopes),
            "rate_per_s": rate,
            "allow_countries": policy.get("countries"),
            "allow_premium": policy.get("premium", False),
            "revoked_at": None,
        }
        return made.key

    def revoke(self, key: str) -> None:
        ident = key_id(key)
        assert ident is not None
        self.rows[ident]["revoked_at"] = datetime.now(UTC)

    async def by_id(self, ident: str) -> dict[str, Any] | None:
        self.lookups += 1
        await asyncio.sleep(0)  # a query: other requests run meanwhile
        return self.rows.get(ident)

    async def touch(self, ident: str) -> None:
        self.touched.append(ident)


def _authenticator(keys: Keys, clock: Clock) -> Authenticator:
    bootstrap = Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None)
    return Authenticator(keys, bootstrap_key=BOOTSTRAP_KEY, bootstrap=bootstrap, cache_s=2.0, clock=clock)


async def test_a_key_row_is_cached_briefly_and_a_revocation_seen_after() -> None:
    keys, clock = Keys(), Clock()
    auth = _authenticator(keys, clock)
    key = keys.add("reports", {Scope.CALLS_READ}, countries=["US"])
    who = await auth.authenticate(key)
    assert who.name == "reports" and who.scopes == {Scope.CALLS_READ} and who.rate_per_s == 50.0
    assert who.destinations == DestinationPolicy(frozenset({"US"}), premium=False)
    keys.revoke(key)
    clock.now += 1.9
    assert (await auth.authenticate(key)).name == "reports"  # still the cached row
    assert keys.lookups == 1
    clock.now += 0.2
    with pytest.raises(Unauthenticated) as refused:
        await auth.authenticate(key)
    assert (refused.value.reason, refused.value.name) == ("revoked", "reports")


async def test_concurrent_requests_share_one_lookup() -> None:
    keys, clock = Keys(), Clock()
    auth = _authenticator(keys, clock)
    key = keys.add("busy", {Scope.CALLS_WRITE})
    names = await asyncio.gather(*(auth.authenticate(key) for _ in range(20)))
    assert {p.name for p in names} == {"busy"} and keys.lookups == 1


async def test_wrong_unknown_and_bootstrap_tokens() -> None:
    keys, clock = Keys(), Clock()
    auth = _authenticator(keys, clock)
    key = keys.add("ci", {Scope.CALLS_READ})
    assert (await auth.authenticate(BOOTSTRAP_KEY)).name == BOOTSTRAP
    assert keys.lookups == 0  # the bootstrap key is no row
    with pytest.raises(Unauthenticated) as wrong:
        await auth.authenticate(key[:-2] + ("zz" if not key.endswith("zz") else "yy"))
    assert (wrong.value.reason, wrong.value.name) == ("wrong secret", "ci")
    with pytest.raises(Unauthenticated) as unknown:
        await auth.authenticate(new_key().key)
    assert (unknown.value.reason, unknown.value.name) == ("no key with that id", None)
    with pytest.raises(Unauthenticated) as junk:
        await auth.authenticate("not-a-key")
    assert junk.value.reason == "not an API key"


async def test_last_used_is_written_at_most_once_a_minute() -> None:
    keys, clock = Keys(), Clock()
    auth = _authenticator(keys, clock)
    key = keys.add("ci", {Scope.CALLS_READ})
    for _ in range(5):
        await auth.authenticate(key)
        clock.now += 3
    assert len(keys.touched) == 1
    clock.now += TOUCH_EVERY_S
    await auth.authenticate(key)
    assert len(keys.touched) == 2


async def test_a_failed_touch_does_not_fail_the_request() -> None:
    class Unwritable(Keys):
        async def touch(self, ident: str) -> None:
            raise Unavailable("last_used_at could not be written")

    keys = Unwritable()
    auth = _authenticator(keys, Clock())
    key = keys.add("ci", {Scope.CALLS_READ})
    assert (await auth.authenticate(key)).name == "ci"


class Limiter:
    """Refuses the named keys."""

    def __init__(self, over: set[str]) -> None:
        self.over = over
        self.asked: list[tuple[str, float]] = []

    async def retry_after(self, name: str, rate_per_s: float) -> int | None:
        self.asked.append((name, rate_per_s))
        return 3 if name in self.over else None


def _reached(name: str) -> Exception:
    """Any service or store: every awaited method answers 418."""
    return ApiError(418, "reached", name)


EXPECTED = {
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
    ("GET", "/health"): None,
    ("GET", "/health/live"): None,
    ("GET", "/openapi.json"): None,
}
"""The issue's table, written out again: a change to the map must change this too."""


def test_every_route_has_its_scope() -> None:
    assert ROUTE_SCOPES == EXPECTED
    app = create_app(_deps(Keys(), Limiter(set())))
    registered = {
        ("GET" if r.method == "HEAD" else r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
    }
    assert registered == set(ROUTE_SCOPES)


def _deps(keys: Keys, limiter: Limiter) -> ApiDeps:
    return api_deps(
        _reached,
        keys=_authenticator(keys, Clock()),
        rate_limiter=cast(Any, limiter),
    )


def _concrete(path: str) -> str:
    return path.replace("{call_id}", "0b6f3c2e-8f4d-4a51-9a55-2f1f0c7d9e10").replace(
        "{campaign_id}", "5d0c8a52-1d1e-4a43-9a0e-6c9b1f0e2a77"
    )


async def test_each_route_needs_its_scope_and_no_other() -> None:
    keys, limiter = Keys(), Limiter(set())
    by_scope = {scope: keys.add(scope.value.replace(":", "-"), {scope}) for scope in Scope}
    async with TestClient(TestServer(create_app(_deps(keys, limiter)))) as client:
        for (method, path), scope in ROUTE_SCOPES.items():
            if scope is None:
                continue
            for holder, key in by_scope.items():
                response = await client.request(
                    method, _concrete(path), headers={"Authorization": f"Bearer {key}"}
                )
                if holder in (scope, Scope.ADMIN):
                    # Past the access checks: the handler's own answer (418 from a stub, or
                    # its refusal of the empty body).
                    assert response.status in (415, 418), (method, path, holder, await response.text())
                else:
                    body = await response.json()
                    assert response.status == 403, (method, path, holder)
                    assert body["error"]["code"] == "forbidden-scope"
                    assert scope.value in body["error"]["message"]
                    assert body["error"]["field"] == "Authorization"


async def test_refusals_401_429() -> None:
    keys = Keys()
    writer = keys.add("writer", {Scope.CALLS_WRITE, Scope.CALLS_READ}, rate=2)
    limiter = Limiter({"writer"})
    async with TestClient(TestServer(create_app(_deps(keys, limiter)))) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {writer}"}):
            response = await client.get("/v1/calls", headers=headers)
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthorized"
        # An unknown route under /v1 is answered (404) only to a key holder.
        assert (await client.get("/v1/nothing")).status == 401
        assert (await client.get("/nothing")).status == 404
        limited = await client.get("/v1/calls", headers={"Authorization": f"Bearer {writer}"})
        assert limited.status == 429 and limited.headers["Retry-After"] == "3"
        assert (await limited.json())["error"]["code"] == "rate-limited"
        assert limiter.asked == [("writer", 2.0)]
        # The bootstrap key (no rate of its own here) is never sent to the limiter.
        await client.get("/v1/calls", headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"})
        assert limiter.asked == [("writer", 2.0)]
