"""A TCP relay the tests can cut, in front of a node's AMI port: a network fault on demand.

There is no firewall on this machine (no iptables, no nft), so the dispatcher is pointed at this
relay instead of the node. `cut("reset")` resets every relayed connection and refuses new ones,
as a link that went down; `cut("blackhole")` keeps the connections open but drops every byte
and lets new connections hang, as a partition that TCP itself does not notice. `restore()`
relays again; blackholed connections are reset then, as a NAT or firewall that lost its state
would.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Mode = Literal["pass", "reset", "blackhole"]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a dropped link looks to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class TcpCut:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self._listen = listen
        self._upstream = upstream
        self._mode: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self.connections = 0
        """How many client connections were accepted and relayed (reconnects show here)."""

    # ---- control, from the test's thread ---------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen_now())

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def cut(self, mode: Literal["reset", "blackhole"]) -> None:
        self._call(self._cut(mode))

    def restore(self) -> None:
        self._call(self._restore())

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    # ---- the relay, on its own loop ----------------------------------------------------------

    async def _listen_now(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self._listen, reuse_address=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for client, upstream in list(self._pairs):
            _reset(client)
            _reset(upstream)
        self._pairs.clear()
        for held in list(self._held):
            _reset(held)
        self._held.clear()

    async def _cut(self, mode: Literal["reset", "blackhole"]) -> None:
        self._mode = mode
        if mode == "reset":
            await self._shutdown()  # and refuse: nothing listens until restore()

    async def _restore(self) -> None:
        was = self._mode
        self._mode = "pass"
        if was == "blackhole":
            await self._shutdown()
        if self._server is None:
            await self._listen_now()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "blackhole":
            # Accepted, never answered: the AMI banner and login never come.
            self._held.add(writer)
            try:
                while await reader.read(65536):
                    pass
            except (ConnectionError, OSError):
                pass
            self._held.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(writer)
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                if not w.is_closing():
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self._mode == "blackhole":
                    continue  # dropped on the floor
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()


@contextmanager
def tcp_cut(listen: tuple[str, int], upstream: tuple[str, int]) -> Iterator[TcpCut]:
    link = TcpCut(listen, upstream)
    link.start()
    try:
        yield link
    finally:
        link.stop()
