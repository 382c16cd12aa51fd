"""The simulated node's ARI (aiohttp): the REST routes the dispatcher uses and the event WebSocket
(`/ari/events?app=X&subscribeAll=true`), with Basic authentication and per-app event filters.

As on Asterisk 22 (orchestrator/asterisk/ari.py says what was verified there): a POST the node
makes no channel for answers 500 {"error": "Allocation failed"}; a second WebSocket on an app
name takes the app over and the first one gets ApplicationReplaced, then nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bench.fake_asterisk.ami_server import VERSION
from bench.fake_asterisk.ari_messages import channel_object, step_messages, timestamp
from bench.fake_asterisk.calls import Dialed, Step, dialed_endpoint
from bench.fake_asterisk.node import Channel, FakeNode

ASTERISK_ID = "02:fc:00:00:00:01"


@dataclass
class EventSocket:
    app: str
    ws: web.WebSocketResponse
    allowed: frozenset[str] | None = None
    """Event types let through (the app's eventFilter); None: every type."""
    pending: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, kind: str, text: str) -> None:
        if self.allowed is None or kind in self.allowed:
            self.pending.append(text)
            self.wake.set()

    async def pump(self) -> None:
        """Writes what was offered, in order; one task a socket, not one a message."""
        while not self.ws.closed:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            for text in batch:
                await self.ws.send_str(text)


class AriEvents:
    """The node's listener for ARI: each step's JSON made once, each socket adding its app."""

    def __init__(self, node: FakeNode) -> None:
        self.sockets: dict[str, EventSocket] = {}
        node.listeners.append(self)

    def tell(self, channel: Channel, step: Step) -> None:
        if not self.sockets:
            return
        for message in step_messages(channel, step):
            # Every socket's copy differs only in its app: the rest is dumped once.
            head = json.dumps(message)[:-1] + f', "asterisk_id": "{ASTERISK_ID}", "application": '
            for socket in list(self.sockets.values()):
                socket.offer(message["type"], head + json.dumps(socket.app) + "}")

    def refused(self, dialed: Dialed) -> None:
        """Nothing on the socket: the POST's 500 says it."""


class AriApp:
    def __init__(self, node: FakeNode, user: str, password: str) -> None:
        self._node = node
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.events = AriEvents(node)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticated])
        app.router.add_get("/ari/asterisk/info", self._info)
        app.router.add_get("/ari/applications/{app}", self._application)
        app.router.add_put("/ari/applications/{app}/eventFilter", self._filter)
        app.router.add_get("/ari/channels", self._list)
        app.router.add_get("/ari/channels/{id}", self._channel)
        app.router.add_post("/ari/channels/{id}", self._originate)
        app.router.add_delete("/ari/channels/{id}", self._hangup)
        app.router.add_get("/ari/events", self._socket)
        return app

    @web.middleware
    async def _authenticated(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != self._auth:
            return web.json_response({"message": "Authentication required"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _info(self, _: web.Request) -> web.Response:
        started = timestamp(self._node.started_at)
        return web.json_response(
            {
                "system": {"version": VERSION, "entity_id": ASTERISK_ID},
                "config": {"name": self._node.name, "max_channels": self._node.behaviour.capacity},
                "status": {"startup_time": started, "last_reload_time": started},
            }
        )

    def _app_object(self, name: str) -> dict[str, Any] | None:
        socket = self.events.sockets.get(name)
        if socket is None:
            return None
        allowed = [{"type": kind} for kind in sorted(socket.allowed or ())]
        return {"name": name, "channel_ids": [], "bridge_ids": [], "endpoint_ids": [], "device_names": [],
                "events_allowed": allowed, "events_disallowed": []}  # fmt: skip

    async def _application(self, request: web.Request) -> web.Response:
        found = self._app_object(request.match_info["app"])
        if found is None:
            return web.json_response({"message": "Application not found"}, status=404)
        return web.json_response(found)

    async def _filter(self, request: web.Request) -> web.Response:
        socket = self.events.sockets.get(request.match_info["app"])
        if socket is None:
            return web.json_response({"message": "Application not found"}, status=404)
        body = await request.json()
        allowed = body.get("allowed") if isinstance(body, dict) else None
        socket.allowed = frozenset(str(item.get("type")) for item in allowed or []) or None
        return web.json_response(self._app_object(socket.app))

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response([channel_object(c) for c in self._node.channels.values()])

    async def _channel(self, request: web.Request) -> web.Response:
        channel = self._node.channels.get(request.match_info["id"])
        if channel is None:
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.json_response(channel_object(channel))

    async def _originate(self, request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        if ident in self._node.channels:
            return web.json_response({"message": "Channel with given unique ID already exists"}, status=409)
        body = await request.json() if request.can_read_body else {}
        dialed = _dialed_of(ident, request.query, body)
        channel = self._node.dial(dialed) if dialed is not None else None
        if channel is None:
            return web.json_response({"error": "Allocation failed"}, status=500)
        return web.json_response(channel_object(channel))

    async def _hangup(self, request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        try:
            cause = int(request.query.get("reason_code", "16"))
        except ValueError:
            return web.json_response({"message": "Invalid reason_code"}, status=400)
        if not self._node.hang_up(ident, cause):
            return web.json_response({"message": "Channel not found"}, status=404)
        return web.Response(status=204)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        name = request.query.get("app", "")
        replaced = self.events.sockets.get(name)
        if replaced is not None:
            notice = {"type": "ApplicationReplaced", "application": name}
            replaced.offer("ApplicationReplaced", json.dumps(notice))
            replaced.allowed = frozenset()  # then silence
        socket = EventSocket(name, ws)
        self.events.sockets[name] = socket
        pump = asyncio.ensure_future(socket.pump())
        try:
            async for _ in ws:
                pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            if self.events.sockets.get(name) is socket:
                del self.events.sockets[name]
        return ws


def _dialed_of(ident: str, query: Mapping[str, str], body: Any) -> Dialed | None:
    endpoint = dialed_endpoint(query.get("endpoint", ""))
    if endpoint is None:
        return None
    variables = body.get("variables", {}) if isinstance(body, dict) else {}
    try:
        ring_s = float(query.get("timeout", "30"))
        max_call_s = float(variables.get("SESPCL_MAX_CALL_S", "0") or 0)
    except ValueError:
        return None
    number, trunk = endpoint
    return Dialed(
        uniqueid=ident,
        trunk=trunk,
        number=number,
        caller=query.get("callerId") or "",
        call_id=str(variables.get("SESPCL_CALL_ID", "")),
        ring_timeout_s=ring_s,
        max_call_s=max_call_s,
        context=query.get("context", "sespcl-outbound"),
    )


async def serve_ari(node: FakeNode, host: str, port: int, user: str, password: str) -> web.AppRunner:
    runner = web.AppRunner(AriApp(node, user, password).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
