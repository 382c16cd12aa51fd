"""A request body as the API reads it: in chunks, each wait for the client bounded
(SESPCL_UPLOAD_IDLE_S), the whole bounded in size."""

from __future__ import annotations

import asyncio
from typing import Protocol

CHUNK = 256 * 1024


class BodyTooLarge(Exception):
    def __init__(self, most: int) -> None:
        super().__init__(f"the body is longer than {most} bytes")
        self.most = most


class BodyIdle(Exception):
    """The client sent nothing for idle_s: cut off, nothing of the request is kept."""

    def __init__(self, idle_s: float, received: int) -> None:
        super().__init__(f"nothing arrived for {idle_s:g} s after {received} bytes of the body")
        self.idle_s, self.received = idle_s, received


class ChunkSource(Protocol):
    """What is used of aiohttp's StreamReader (request.content)."""

    async def read(self, n: int = -1) -> bytes: ...


class BodyStream:
    def __init__(self, source: ChunkSource, *, most: int, idle_s: float) -> None:
        self._source, self._most, self._idle_s = source, most, idle_s
        self.received = 0

    async def read(self) -> bytes:
        """The next chunk, as much as has arrived (up to CHUNK); b"" at the end of the body."""
        try:
            async with asyncio.timeout(self._idle_s):
                chunk = await self._source.read(CHUNK)
        except TimeoutError as exc:
            raise BodyIdle(self._idle_s, self.received) from exc
        self.received += len(chunk)
        if self.received > self._most:
            raise BodyTooLarge(self._most)
        return chunk

    async def read_all(self) -> bytes:
        """The whole body, however many writes the client sent it in."""
        body = bytearray()
        while chunk := await self.read():
            body += chunk
        return bytes(body)
