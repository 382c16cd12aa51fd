"""Reading a request body: whole however it is split, bounded in size and in each wait."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.api.body_stream import BodyIdle, BodyStream, BodyTooLarge


class Client:
    """A client's body as aiohttp hands it over: only what has arrived, one write at a time."""

    def __init__(self, writes: list[bytes], pause_s: float = 0.0, then_hang: bool = False) -> None:
        self._writes, self._pause_s, self._then_hang = list(writes), pause_s, then_hang

    async def read(self, n: int = -1) -> bytes:
        if not self._writes:
            if self._then_hang:
                await asyncio.Event().wait()
            return b""
        await asyncio.sleep(self._pause_s)  # the client's own pace, not a synchronisation
        write = self._writes.pop(0)
        if 0 <= n < len(write):
            self._writes.insert(0, write[n:])
            write = write[:n]
        return write


async def test_a_body_in_several_writes_is_read_whole() -> None:
    writes = [b'{"to": "+1415', b"2012345", b'", "tts": {"text": "Hi."}}']
    body = BodyStream(Client(writes), most=1000, idle_s=5)
    assert await body.read_all() == b"".join(writes)


async def test_a_body_over_the_limit_is_refused_as_it_streams() -> None:
    body = BodyStream(Client([b"x" * 600, b"x" * 600, b"x" * 10_000]), most=1000, idle_s=5)
    with pytest.raises(BodyTooLarge) as info:
        await body.read_all()
    assert info.value.most == 1000 and body.received == 1200


async def test_a_client_that_stops_sending_is_cut_after_the_idle_bound() -> None:
    body = BodyStream(Client([b"[", b'{"to": '], then_hang=True), most=1000, idle_s=0.2)
    started = time.monotonic()
    with pytest.raises(BodyIdle) as info:
        await body.read_all()
    assert 0.2 <= time.monotonic() - started < 5
    assert info.value.received == len(b'[{"to": ') and "0.2 s" in str(info.value)


async def test_the_idle_bound_is_per_wait_not_for_the_whole_body() -> None:
    """A slow client that keeps sending takes longer than the bound in all, and is read whole."""
    writes = [b"x"] * 8
    body = BodyStream(Client(writes, pause_s=0.05), most=1000, idle_s=0.3)
    started = time.monotonic()
    assert await body.read_all() == b"x" * 8
    assert time.monotonic() - started >= 0.3
