"""The webhook sender's HTTP adapter: one POST a try, over aiohttp, reaching only addresses the
SSRF rules allow (domain/webhooks.py). Every way a try can fail comes back as a `TryResult`,
never as an exception.

A name is resolved by `CheckedResolver`, which checks every address it resolves to before
aiohttp may connect, and aiohttp connects only to the addresses it returned: a name that
resolves to a public address for a check and to a private one for the connection (DNS
rebinding) cannot slip between the two. A literal address never reaches a resolver (aiohttp
connects to it directly), so the URL itself is checked again before each try.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from orchestrator.domain.webhook_delivery import TryResult
from orchestrator.domain.webhooks import AllowList, UrlRefused, check_resolved, check_url

CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 15.0
USER_AGENT = "SESPCLSwitch-Webhooks/1"


class CheckedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default), then refuses the whole name (UrlRefused) when
    any address is forbidden and not allowed."""

    def __init__(self, allow: AllowList, inner: AbstractResolver | None = None) -> None:
        self._allow = allow
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        check_resolved(host, [ipaddress.ip_address(r["host"]) for r in results], self._allow)
        return results

    async def close(self) -> None:
        await self._inner.close()


class HttpPoster:
    """POSTs with a session of its own: 5 s to connect, 15 s in all, no redirect followed, no
    proxy from the environment, the answer's body never read."""

    def __init__(
        self,
        allow: AllowList,
        *,
        connections: int = 100,
        resolver: AbstractResolver | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        total_timeout_s: float = TOTAL_TIMEOUT_S,
    ) -> None:
        self._allow = allow
        self._connections = connections
        self._connect_timeout_s = connect_timeout_s
        self._total_timeout_s = total_timeout_s
        self._resolver = CheckedResolver(allow, resolver)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(resolver=self._resolver, limit=self._connections, ttl_dns_cache=10)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self._total_timeout_s,
                connect=self._connect_timeout_s,
                sock_connect=self._connect_timeout_s,
            ),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> TryResult:
        if self._session is None:
            raise RuntimeError("HttpPoster.open() first")
        at = datetime.now(UTC)
        started = time.monotonic()

        def took() -> float:
            return round((time.monotonic() - started) * 1000, 1)

        try:
            check_url(url, self._allow)
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as answer:
                code = answer.status
                retry_after = answer.headers.get("Retry-After")
            error = None if 200 <= code < 300 else f"HTTP {code}"
            return TryResult(at=at, latency_ms=took(), status_code=code, error=error, retry_after=retry_after)
        except UrlRefused as exc:
            return TryResult(at=at, latency_ms=took(), error=f"refused (SSRF): {exc}", refused=True)
        except TimeoutError:
            error = f"timeout ({self._connect_timeout_s:g} s to connect, {self._total_timeout_s:g} s in all)"
            return TryResult(at=at, latency_ms=took(), error=error)
        except aiohttp.InvalidURL as exc:
            return TryResult(at=at, latency_ms=took(), error=f"invalid URL: {exc}", refused=True)
        except (aiohttp.ClientError, OSError) as exc:
            return TryResult(at=at, latency_ms=took(), error=f"connection error: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:500]
