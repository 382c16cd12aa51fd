"""HTTP/1.1 spoken by hand, for clients no library would be: a body in as many TCP writes as the
test likes, paused, dripped, endless, or never finished."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlparse


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


class RawRequest:
    """One request on a connection of its own: the head goes out on entering, the body as the
    test writes it."""

    def __init__(self, api_url: str, method: str, path: str, headers: dict[str, str]) -> None:
        url = urlparse(api_url)
        self._address = (url.hostname or "127.0.0.1", url.port or 80)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._address[0]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sent = 0
        """Body bytes the server has taken so far."""

    async def __aenter__(self) -> RawRequest:
        self._reader, self._writer = await asyncio.open_connection(*self._address)
        # Each write its own TCP segment, at once: what a client writing in pieces sends.
        self._writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer.write(self._head)
        await self._writer.drain()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.close()
        with suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    async def send(self, data: bytes) -> bool:
        """Write part of the body; False once the server has closed the connection."""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            return False
        self.sent += len(data)
        return True

    async def reply(self, timeout: float) -> Reply:
        async with asyncio.timeout(timeout):
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in filter(None, header_lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return Reply(int(status_line.split()[1]), headers, body)

    async def stream(self, pieces: AsyncIterable[bytes], timeout: float) -> Reply:
        """Send pieces until they end or the server answers (as a refusing server does before
        the body is all there), then the answer."""
        answer = asyncio.ensure_future(self.reply(timeout))
        try:
            async for piece in pieces:
                if answer.done() or not await self.send(piece):
                    break
            return await answer
        finally:
            answer.cancel()
