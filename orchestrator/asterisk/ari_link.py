"""One ARI event WebSocket, as a `Link` for the LinkKeeper: its messages decoded and handed on
until it closes, or until another client takes the app over."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import structlog

from orchestrator.asterisk.ari_rest import AriRefused, AriRest

log = structlog.get_logger(__name__)

REPLACED_RETRY_S = 5.0
"""After another client took the app over: retaking it at once would only flap."""


class EventSocket(Protocol):
    """What the link uses of aiohttp's ClientWebSocketResponse."""

    @property
    def close_code(self) -> int | None: ...

    def __aiter__(self) -> AsyncIterator[aiohttp.WSMessage]: ...

    async def close(self) -> bool: ...


class AriLink:
    def __init__(
        self,
        node: str,
        app: str,
        ws: EventSocket,
        rest: AriRest,
        on_message: Callable[[Mapping[str, Any]], None],
    ) -> None:
        self._node = node
        self._app = app
        self._ws = ws
        self._rest = rest
        self._on_message = on_message
        self.retry_after_s: float | None = None

    async def serve(self) -> None:
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self._receive(message.data)
            if message.type is aiohttp.WSMsgType.ERROR or self.retry_after_s is not None:
                break

    def _receive(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("ari.bad_event", node=self._node, data=data[:200])
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "ApplicationReplaced":
            log.error("ari.app_replaced", node=self._node, app=self._app, hint="app names must be unique")
            self.retry_after_s = REPLACED_RETRY_S  # serve() ends, and with it the socket
            return
        self._on_message(event)

    async def ping(self, timeout: float) -> bool:
        """The node answers *and* still has our application. A WebSocket can stay open with no
        app behind it: after a node hangs and resumes, the old session's late teardown was seen
        to unregister the app the new session had just registered, and no event came again.
        Then the socket is closed, so the keeper connects (and registers) anew."""
        try:
            await self._rest.request("GET", "applications", self._app, timeout=timeout)
        except AriRefused as exc:
            if exc.status == 404:
                log.warning("ari.app_lost", node=self._node, app=self._app)
                await self._ws.close()
            return False
        return True

    async def close(self) -> None:
        await self._ws.close()

    def ended(self) -> dict[str, Any]:
        return {"close_code": self._ws.close_code}
