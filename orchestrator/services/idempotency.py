"""Idempotency-Key on the bulk paths (POST /v1/campaigns, /v1/campaigns/{id}/calls, /voice/bulk).

A key is claimed before anything is stored, held while its request runs (a heartbeat keeps the
claim fresh), then either answered (a 2xx: the answer is kept 24 h and replayed) or released
(a refusal: the key is free again, so a corrected retry with it goes through). A request that
meets a held key is told so at once (409 idempotency-key-in-use) rather than made to wait: its
body may be hundreds of MB, and nothing useful can be said about it before the first finishes.

A claim whose holder stopped beating (the API process died mid-upload, which stored nothing)
is taken over after `stale_after_s`. Known gap: a process that dies between an upload's commit
and the recording of its answer (two commits, milliseconds apart) leaves a key a later retry may
take over and upload again; closing it needs the answer written in the upload's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

import structlog

from orchestrator.domain.errors import StoreError

log = structlog.get_logger(__name__)

KEY_TTL_S = 24 * 3600.0
"""How long a key holds its answer, from when it was taken."""
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0
"""A claim not touched for this long belongs to a request that is gone."""


@dataclass(frozen=True)
class Answer:
    """A request's answer as the client got it: replayed as is."""

    status: int
    body: dict[str, Any]
    location: str | None = None


@dataclass(frozen=True)
class Claim:
    """What claiming a key found. `holder` set: this request holds the key now. Otherwise
    `answer` set: an earlier request answered (with `request_hash`); neither: one is running."""

    holder: UUID | None = None
    answer: Answer | None = None
    request_hash: str | None = None

    @property
    def in_use(self) -> bool:
        return self.holder is None and self.answer is None


class IdempotencyStore(Protocol):
    async def claim(self, key: str, holder: UUID, *, ttl_s: float, stale_after_s: float) -> Claim:
        """Take the key for `holder` if it is free, expired or stale; else what holds it.
        Also removes some expired keys (the sweep rides on the claims)."""
        ...

    async def touch(self, key: str, holder: UUID) -> None: ...

    async def answer(self, key: str, holder: UUID, request_hash: str, answer: Answer) -> None: ...

    async def release(self, key: str, holder: UUID) -> None: ...


class IdempotentRequests:
    def __init__(
        self,
        store: IdempotencyStore,
        *,
        ttl_s: float = KEY_TTL_S,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self._store = store
        self._ttl_s, self._heartbeat_s, self._stale_after_s = ttl_s, heartbeat_s, stale_after_s

    async def claim(self, key: str) -> Claim:
        return await self._store.claim(key, uuid4(), ttl_s=self._ttl_s, stale_after_s=self._stale_after_s)

    async def hold(
        self, key: str, holder: UUID, work: Callable[[], Awaitable[Answer]], request_hash: Callable[[], str]
    ) -> Answer:
        """Run `work` holding the key; keep its answer if it is a 2xx, else free the key.
        `request_hash` is asked after `work`: the body it covers has been read by then."""
        beat = asyncio.create_task(self._beat(key, holder))
        try:
            answer = await work()
        except BaseException:
            beat.cancel()
            await asyncio.shield(self._release(key, holder))
            raise
        beat.cancel()
        if 200 <= answer.status < 300:
            await self._keep(key, holder, request_hash(), answer)
        else:
            await self._release(key, holder)
        return answer

    async def _keep(self, key: str, holder: UUID, request_hash: str, answer: Answer) -> None:
        try:
            await self._store.answer(key, holder, request_hash, answer)
        except StoreError as exc:
            # The work is done and stored: the client gets its answer all the same. The claim,
            # unanswered, answers "in use" until it goes stale (the known gap, module docstring).
            log.warning("idempotency.answer_not_kept", key=key, status=answer.status, error=str(exc))

    async def _beat(self, key: str, holder: UUID) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            with contextlib.suppress(StoreError):  # a missed beat or two is what stale_after_s allows
                await self._store.touch(key, holder)

    async def _release(self, key: str, holder: UUID) -> None:
        try:
            await self._store.release(key, holder)
        except StoreError as exc:
            # The claim goes stale instead, and the key is free again after stale_after_s.
            log.warning("idempotency.release_failed", key=key, error=str(exc))
