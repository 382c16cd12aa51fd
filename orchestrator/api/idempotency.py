"""The Idempotency-Key header at the HTTP edge: its check (all keyed paths), and on the bulk
paths the claim, the body hashed as it streams (never held whole), and the replay.

The same key with the same request (same key owner, method, path, query, media type and raw
body bytes) gets the first answer again, status, body and Location, and stores nothing more; with
another request, 409 idempotency-key-reused (as POST /v1/calls answers); while the first request
with the key is still running, 409 idempotency-key-in-use with Retry-After. A refused request
frees its key: only a 2xx answer is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from orchestrator.api.access import principal
from orchestrator.api.body_stream import BodyIdle, BodyStream, BodyTooLarge, ChunkSource
from orchestrator.api.deps import DEPS
from orchestrator.api.errors import ApiError
from orchestrator.api.parsing import idle_error
from orchestrator.services.idempotency import Answer

log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY_MAX = 255
IN_USE_RETRY_AFTER_S = 5
REPLAYED_HEADER = "Idempotent-Replayed"

Work = Callable[[ChunkSource], Awaitable[Answer]]
"""A keyed handler's work: reads its body from the source it is given."""


def idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key, checked; None when it has none."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX and key.isprintable()):
        raise ApiError(
            400,
            "invalid-idempotency-key",
            f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable characters",
            "Idempotency-Key",
        )
    return key


class HashingSource:
    """A body source that hashes each chunk as it is read."""

    def __init__(self, source: ChunkSource, digest: hashlib._Hash) -> None:
        self._source, self.digest = source, digest

    async def read(self, n: int = -1) -> bytes:
        chunk = await self._source.read(n)
        self.digest.update(chunk)
        return chunk


def request_digest(request: web.Request) -> hashlib._Hash:
    """sha256 seeded with what the request is besides its body; the body is added as read.
    The key's owner is in it: another key replaying the same key and body is refused, never
    handed someone else's answer."""
    digest = hashlib.sha256()
    for part in (principal(request).name, request.method, request.path, request.query_string):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\n")
    digest.update(request.headers.get("Content-Type", "").encode("latin-1", "replace") + b"\n")
    return digest


def response_of(answer: Answer, *, replayed: bool = False) -> web.Response:
    headers = {"Location": answer.location} if answer.location else {}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return web.json_response(answer.body, status=answer.status, headers=headers)


async def _drain(source: ChunkSource, request: web.Request, most: int) -> None:
    """Read what is left of the body (hashing it), bounded as the body itself is."""
    body = BodyStream(source, most=most, idle_s=request.app[DEPS].upload_idle_s)
    try:
        while await body.read():
            pass
    except BodyTooLarge as exc:
        raise ApiError(413, "body-too-large", f"the body may be at most {most} bytes") from exc
    except BodyIdle as exc:
        raise idle_error(exc) from exc


async def idempotent(request: web.Request, work: Work, *, most: int) -> web.Response:
    """`work`'s answer, once per Idempotency-Key (any number of times without one). `most`: the
    path's body limit, for reading a replay's body."""
    key = idempotency_key(request)
    if key is None:
        return response_of(await work(request.content))
    requests = request.app[DEPS].idempotency
    source = HashingSource(request.content, request_digest(request))
    claim = await requests.claim(key)
    if claim.in_use:
        log.info("idempotency.in_use", key=key, path=request.path)
        raise ApiError(
            409,
            "idempotency-key-in-use",
            "a request with this Idempotency-Key is still being processed; "
            "send it again once that one is answered",
            "Idempotency-Key",
            headers={"Retry-After": str(IN_USE_RETRY_AFTER_S)},
        )
    if claim.answer is not None:
        await _drain(source, request, most)
        if source.digest.hexdigest() != claim.request_hash:
            raise ApiError(
                409,
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different request body",
                "Idempotency-Key",
            )
        log.info("idempotency.replayed", key=key, path=request.path, status=claim.answer.status)
        return response_of(claim.answer, replayed=True)
    assert claim.holder is not None

    async def whole() -> Answer:
        answer = await work(source)
        await _drain(source, request, most)  # the readers stop at the end; nothing is left, normally
        return answer

    answer = await requests.hold(key, claim.holder, whole, source.digest.hexdigest)
    return response_of(answer)
