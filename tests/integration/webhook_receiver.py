"""A status-callback receiver for the tests: an aiohttp server on a loopback address of its own
that checks every request's signature with the independent `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Arrival:
    path: str
    webhook_id: str
    payload: dict[str, Any]
    answered: int
    """The status answered; 0 when the sender had gone before the answer."""


@dataclass
class Receiver:
    """Answers by path: /ok/… 200; /fail-twice/… 500 to an event's first two tries, then 200;
    /hold/… keeps every request open until `release` is set, then 200. Every request's signature
    is checked; a bad one is recorded and answered 400."""

    secret: str
    address: str
    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, kind: str) -> str:
        return f"http://{self.address}:{self.port}/{kind}/{uuid.uuid4().hex[:8]}"

    def path(self, url: str) -> str:
        return url.split(f":{self.port}", 1)[1]

    def delivered(self, path_prefix: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.path.startswith(path_prefix) and a.answered == 200]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.bad.append(f"{request.path}: {exc}")
            return web.Response(status=400)
        webhook_id = request.headers["webhook-id"]
        self.tries[webhook_id] = self.tries.get(webhook_id, 0) + 1
        kind = request.path.split("/")[1]
        status = 200
        heard = True
        if kind == "fail-twice" and self.tries[webhook_id] <= 2:
            status = 500
        elif kind == "hold":
            self.held.append(webhook_id)
            await self.release.wait()
            # The sender may be gone meanwhile (killed): then nobody hears this answer.
            heard = request.transport is not None and not request.transport.is_closing()
        self.arrivals.append(Arrival(request.path, webhook_id, payload, status if heard else 0))
        return web.Response(status=status)


@asynccontextmanager
async def receiving(secret: str, address: str) -> AsyncIterator[Receiver]:
    state = Receiver(secret=secret, address=address)
    app = web.Application()
    app.router.add_post("/{kind}/{token}", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()
