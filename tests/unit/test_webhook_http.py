"""HttpPoster against a real local aiohttp server: SSRF refused at delivery (names through a fake
resolver, literal addresses, `localhost` through the real one), redirects not followed, Retry-After
read, timeouts and refused connections as failed tries, never exceptions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from orchestrator.domain.webhooks import AllowList
from orchestrator.webhook_http import HttpPoster

BODY = b'{"type": "completed", "status": "busy", "metadata": {"ticket": "INC-20931"}}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_" + "0" * 32}


@dataclass
class FakeDns(AbstractResolver):
    """Names to addresses, as a resolver an attacker controls might answer."""

    names: dict[str, list[str]]
    asked: list[str] = field(default_factory=list)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self.names[host]
        ]

    async def close(self) -> None:
        return None


@dataclass
class Receiver:
    server: TestServer
    bodies: list[bytes] = field(default_factory=list)

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    holder: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        holder[0].bodies.append(await request.read())
        return web.Response(status=204)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hook")

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "120"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(status=200)

    app.router.add_post("/hook", hook)
    app.router.add_post("/moved", moved)
    app.router.add_post("/busy", busy)
    app.router.add_post("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Receiver(server))
    yield holder[0]
    await server.close()


async def _post(poster: HttpPoster, url: str) -> tuple[int | None, str | None, bool, str | None]:
    await poster.open()
    try:
        result = await poster.post(url, BODY, HEADERS)
    finally:
        await poster.close()
    return result.status_code, result.error, result.refused, result.retry_after


async def test_a_name_that_resolves_to_loopback_is_refused_and_nothing_is_sent(receiver: Receiver) -> None:
    dns = FakeDns({"hooks.rebind.example": ["127.0.0.1"]})
    code, error, refused, _ = await _post(
        HttpPoster(AllowList(), resolver=dns), f"http://hooks.rebind.example:{receiver.port}/hook"
    )
    assert (code, refused) == (None, True)
    assert error is not None and "127.0.0.1" in error and "SSRF" in error
    assert receiver.bodies == []
    assert dns.asked == ["hooks.rebind.example"]


async def test_one_private_address_among_public_ones_refuses_the_name(receiver: Receiver) -> None:
    dns = FakeDns({"hooks.partner.example": ["93.184.216.34", "10.20.0.7"]})
    code, error, refused, _ = await _post(
        HttpPoster(AllowList(), resolver=dns), "https://hooks.partner.example/sespcl"
    )
    assert (code, refused) == (None, True)
    assert error is not None and "10.20.0.7" in error


async def test_localhost_through_the_real_resolver_is_refused(receiver: Receiver) -> None:
    code, error, refused, _ = await _post(HttpPoster(AllowList()), f"http://localhost:{receiver.port}/hook")
    assert (code, refused) == (None, True)
    assert error is not None and "localhost" in error
    assert receiver.bodies == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "http://169.254.169.254/latest",
    ],
)
async def test_a_literal_forbidden_address_is_refused_at_delivery(receiver: Receiver, url: str) -> None:
    code, _, refused, _ = await _post(HttpPoster(AllowList()), url.format(port=receiver.port))
    assert (code, refused) == (None, True)
    assert receiver.bodies == []


async def test_an_allowed_network_lets_the_name_through_to_the_checked_address(receiver: Receiver) -> None:
    dns = FakeDns({"receiver.ops.internal": ["127.0.0.1"]})
    poster = HttpPoster(AllowList.parse("127.0.0.1/32"), resolver=dns)
    code, error, refused, _ = await _post(poster, f"http://receiver.ops.internal:{receiver.port}/hook")
    assert (code, error, refused) == (204, None, False)
    assert receiver.bodies == [BODY]


async def test_a_redirect_is_a_failed_try_and_is_not_followed(receiver: Receiver) -> None:
    poster = HttpPoster(AllowList.parse("127.0.0.1"))
    code, error, refused, _ = await _post(poster, f"http://127.0.0.1:{receiver.port}/moved")
    assert (code, error, refused) == (302, "HTTP 302", False)
    assert receiver.bodies == []


async def test_retry_after_is_read_from_the_answer(receiver: Receiver) -> None:
    poster = HttpPoster(AllowList.parse("127.0.0.1"))
    assert await _post(poster, f"http://127.0.0.1:{receiver.port}/busy") == (503, "HTTP 503", False, "120")


async def test_a_receiver_too_slow_is_a_timeout(receiver: Receiver) -> None:
    poster = HttpPoster(AllowList.parse("127.0.0.1"), total_timeout_s=0.2)
    code, error, refused, _ = await _post(poster, f"http://127.0.0.1:{receiver.port}/slow")
    assert (code, refused) == (None, False)
    assert error is not None and error.startswith("timeout")


async def test_a_refused_connection_is_a_failed_try() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, error, refused, _ = await _post(
        HttpPoster(AllowList.parse("127.0.0.1")), f"http://127.0.0.1:{port}/"
    )
    assert (code, refused) == (None, False)
    assert error is not None and error.startswith("connection error")
