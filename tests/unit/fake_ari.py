"""A small ARI server (aiohttp.web) for driving AriNode through link faults in unit tests: the
REST routes AriNode uses and the event WebSocket, with the faults under the test's control.
The driver's behaviour against real Asterisk is in tests/integration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


class FakeAri:
    def __init__(self) -> None:
        self.channels: dict[str, str] = {}  # id -> state
        self.sockets: list[web.WebSocketResponse] = []
        self.apps: set[str] = set()
        self.post_delay_s = 0.0
        self.on_post: Callable[[str], Awaitable[None]] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ari/asterisk/info", self._info)
        app.router.add_put("/ari/applications/{app}/eventFilter", self._known_app)
        app.router.add_get("/ari/applications/{app}", self._known_app)
        app.router.add_get("/ari/channels", self._list)
        app.router.add_get("/ari/channels/{id}", self._channel)
        app.router.add_post("/ari/channels/{id}", self._originate)
        app.router.add_get("/ari/events", self._events)
        return app

    async def _info(self, _: web.Request) -> web.Response:
        return web.json_response({"system": {"version": "22.fake"}})

    async def _known_app(self, request: web.Request) -> web.Response:
        if request.match_info["app"] in self.apps:
            return web.json_response({})
        return web.json_response({"message": "Application not found"}, status=404)

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response(
            [{"id": k, "name": f"PJSIP/x-{k[:4]}", "state": v} for k, v in self.channels.items()]
        )

    async def _channel(self, request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        if ident not in self.channels:
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.json_response({"id": ident, "state": self.channels[ident]})

    async def _originate(self, request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        if self.on_post is not None:
            await self.on_post(ident)
        await asyncio.sleep(self.post_delay_s)
        return web.json_response({"id": ident, "state": "Down"})

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self.apps.add(request.query["app"])
        try:
            async for _ in ws:
                pass
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    async def emit(self, event: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            await ws.send_str(json.dumps(event))

    async def drop_event_sockets(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        self.sockets.clear()


async def serve(fake: FakeAri) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    return runner, int(server.sockets[0].getsockname()[1])
