"""Each key's request rate, counted in Redis so every API process shares it.

redis.asyncio: the event loop never waits on Redis's socket. The check is one Lua script (one
round trip, atomic), the GCRA of orchestrator/domain/rate.py step for step, on Redis's clock so
the API processes' clocks need not agree.

When Redis does not answer, requests go through (fail open) and a warning is logged, at most
once a minute. This platform carries emergency notices: a rate limiter that is down must not
stop them. Keys, scopes and destinations are still checked (they come from PostgreSQL), so a
leaked key still cannot call premium numbers or other countries; only its volume goes
unchecked while Redis is down, and Redis down already makes /health answer 503. After a failed
check Redis is not asked again for a second, so a Redis that hangs adds no timeout per request.
"""

from __future__ import annotations

import math
import time

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from orchestrator.domain.rate import Gcra, retry_after_s

log = structlog.get_logger(__name__)

_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local start = tonumber(redis.call('GET', KEYS[1]))
if start == nil or start < now then start = now end
local allow_at = start - tolerance
if now < allow_at then
  return allow_at - now
end
local tat = start + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return 0
"""
"""Microseconds throughout (whole numbers, exact in Lua); returns the wait, 0 when allowed."""

SKIP_AFTER_FAILURE_S = 1.0
WARN_EVERY_S = 60.0


def connect(url: str, timeout_s: float) -> RateLimiter:
    """No retries: a Redis that is down costs a request one short timeout, then none for a
    second, instead of redis-py's default retries with backoff (seconds)."""
    redis = Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )
    return RateLimiter(redis)


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str = "sespcl:rate:") -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)
        self._prefix = prefix
        self._skip_until = 0.0
        self._warned_at = -math.inf

    async def retry_after(self, name: str, rate_per_s: float) -> int | None:
        """Whole seconds the key must wait (Retry-After) when over its rate, else None."""
        now = time.monotonic()
        if now < self._skip_until:
            return None
        gcra = Gcra(rate_per_s)
        try:
            wait_us = await self._script(
                keys=[self._prefix + name], args=[gcra.interval_us, gcra.tolerance_us]
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = now + SKIP_AFTER_FAILURE_S
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning("api.rate_limit_unavailable", error=type(exc).__name__, fail="open")
            return None
        return retry_after_s(int(wait_us)) if int(wait_us) > 0 else None

    async def close(self) -> None:
        await self._redis.aclose()
