"""Who a bearer token is: the bootstrap key (SESPCL_API_KEY), or a key row, cached briefly.

Each API process keeps a key's row for `cache_s` (2 s): a revoked key is refused by every API
process within that, and a busy key costs a query every 2 s, not one per request.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.errors import Unavailable
from orchestrator.domain.keys import Principal, Scope, key_id, key_matches
from orchestrator.services.single_flight import SingleFlight

log = structlog.get_logger(__name__)

TOUCH_EVERY_S = 60.0
"""last_used_at is a day-to-day hint for operators: written at most once a minute per key."""


class KeyRepository(Protocol):
    async def by_id(self, key_id: str) -> dict[str, Any] | None: ...

    async def touch(self, key_id: str) -> None:
        """Raises Unavailable when the write fails, whatever the reason."""
        ...


class Unauthenticated(Exception):
    """The token is no key, or a revoked one. `name`: the key's, when the token named one."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.name = reason, name


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    revoked: bool
    principal: Principal


def principal_of(row: dict[str, Any]) -> Principal:
    known = {s.value: s for s in Scope}
    countries = row["allow_countries"]
    return Principal(
        name=str(row["name"]),
        # A scope this version does not know (a newer CLI wrote it) grants nothing here.
        scopes=frozenset(known[s] for s in row["scopes"] if s in known),
        rate_per_s=float(row["rate_per_s"]),
        destinations=DestinationPolicy(
            frozenset(countries) if countries is not None else None, bool(row["allow_premium"])
        ),
    )


class Authenticator:
    def __init__(
        self,
        keys: KeyRepository,
        *,
        bootstrap_key: str,
        bootstrap: Principal,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._bootstrap_key = bootstrap_key.encode()
        self._bootstrap = bootstrap
        self._rows: SingleFlight[str, _Entry | None] = SingleFlight(cache_s, clock=clock)
        self._clock = clock
        self._touched: dict[str, float] = {}

    async def authenticate(self, token: str) -> Principal:
        if hmac.compare_digest(token.encode(), self._bootstrap_key):
            return self._bootstrap
        ident = key_id(token)
        if ident is None:
            raise Unauthenticated("not an API key")
        entry = await self._rows.get(ident, lambda: self._load(ident))
        if entry is None:
            raise Unauthenticated("no key with that id")
        if not key_matches(token, entry.digest):
            raise Unauthenticated("wrong secret", entry.principal.name)
        if entry.revoked:
            raise Unauthenticated("revoked", entry.principal.name)
        await self._touch(ident)
        return entry.principal

    async def _load(self, ident: str) -> _Entry | None:
        row = await self._keys.by_id(ident)
        if row is None:
            return None
        return _Entry(bytes(row["key_hash"]), row["revoked_at"] is not None, principal_of(row))

    async def _touch(self, ident: str) -> None:
        now = self._clock()
        if now - self._touched.get(ident, -math.inf) < TOUCH_EVERY_S:
            return
        self._touched[ident] = now
        try:
            await self._keys.touch(ident)
        except Unavailable as exc:  # a hint for operators: never worth failing the request
            log.warning("api.key_touch_failed", key_id=ident, error=type(exc.__cause__ or exc).__name__)
