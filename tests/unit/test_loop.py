"""The long-running processes run on uvloop (see orchestrator/loop.py for why)."""

from __future__ import annotations

import asyncio

import uvloop

from orchestrator.loop import asyncio_run, new_event_loop


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_asyncio_run_runs_the_coroutine_on_uvloop() -> None:
    assert isinstance(asyncio_run(_running_loop()), uvloop.Loop)


def test_new_event_loop_is_uvloop() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert isinstance(loop.run_until_complete(_running_loop()), uvloop.Loop)
    finally:
        loop.close()
