"""The LinkKeeper both drivers stand on: links opened again with backoff, up and down reported
once each, the node's events handed on whatever the dispatcher does with them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from orchestrator.asterisk.link import LinkKeeper
from orchestrator.domain.dialing import NodeLinkFailed, NodeNotConnected, NodeTimeout
from orchestrator.domain.events import ChannelEvent, ChannelState
from tests.unit.fakes import eventually, settle


class ScriptedLink:
    """Up until `end()`; `fail` makes serve() raise, `retry_after_s` asks for a pause."""

    def __init__(self, *, retry_after_s: float | None = None, ping: Any = True) -> None:
        self.retry_after_s = retry_after_s
        self._ended = asyncio.Event()
        self._fail = False
        self._ping = ping
        self.closed = False

    def end(self, *, fail: bool = False) -> None:
        self._fail = fail
        self._ended.set()

    async def serve(self) -> None:
        await self._ended.wait()
        if self._fail:
            raise RuntimeError("a bug in the session")

    async def ping(self, timeout: float) -> bool:
        if isinstance(self._ping, BaseException):
            raise self._ping
        return bool(self._ping)

    async def close(self) -> None:
        self.closed = True

    def ended(self) -> dict[str, Any]:
        return {"why": "ended"}


class Harness:
    """A keeper whose opens follow `script` (a link, or an error to raise), with every state
    report, event and wait between attempts kept."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.states: list[bool] = []
        self.events: list[ChannelEvent] = []
        self.waits: list[float] = []
        self.opens = 0
        self.keeper: LinkKeeper[ScriptedLink] = LinkKeeper(
            "n1",
            "test",
            self._open,
            on_event=lambda node, event: self.events.append(event),
            on_state=lambda node, up: self.states.append(up),
            sleep=self._sleep,
        )

    async def _open(self) -> ScriptedLink:
        self.opens += 1
        step = self.script.pop(0) if self.script else NodeLinkFailed("refused")
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, ScriptedLink)
        return step

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)
        if len(self.waits) > 50:
            await asyncio.Event().wait()  # enough: stop here


async def test_failed_opens_are_retried_after_waits_doubling_to_five_seconds() -> None:
    harness = Harness([NodeTimeout("no login")] * 7)
    harness.keeper.start()
    await eventually(lambda: len(harness.waits) >= 8)
    assert harness.waits[:8] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert harness.states == [] and not harness.keeper.up, "never up: nothing reported"
    await harness.keeper.aclose()


async def test_up_and_down_are_reported_once_each_and_a_dropped_link_is_opened_again_at_once() -> None:
    first, second = ScriptedLink(), ScriptedLink()
    harness = Harness([NodeTimeout("no login"), first, second])
    harness.keeper.start()
    assert await harness.keeper.wait_up(1)
    assert harness.states == [True] and harness.keeper.live() is first
    first.end()
    await eventually(lambda: harness.states == [True, False, True])
    assert first.closed and harness.keeper.live() is second
    assert harness.waits == [0.5], "only the failed open waited"
    assert harness.keeper.opened == 2
    await harness.keeper.aclose()
    assert second.closed and harness.states == [True, False, True], "a close is not a link lost"
    assert not harness.keeper.up


async def test_a_link_that_asks_for_a_pause_and_one_that_failed_wait() -> None:
    replaced, broken, last = ScriptedLink(retry_after_s=5.0), ScriptedLink(), ScriptedLink()
    harness = Harness([replaced, broken, last])
    harness.keeper.start()
    assert await harness.keeper.wait_up(1)
    replaced.end()
    await eventually(lambda: harness.keeper.opened == 2 and harness.keeper.up)
    broken.end(fail=True)  # logged as <driver>.session_failed, and backed off
    await eventually(lambda: harness.keeper.opened == 3 and harness.keeper.up)
    assert harness.waits == [5.0, 5.0]
    assert harness.states == [True, False, True, False, True]
    await harness.keeper.aclose()


async def test_an_open_that_raises_a_bug_does_not_end_the_keeper() -> None:
    link = ScriptedLink()
    harness = Harness([KeyError("bug"), link])
    harness.keeper.start()
    assert await harness.keeper.wait_up(1)
    assert harness.waits == [0.5]
    await harness.keeper.aclose()


async def test_ping_and_live_when_down_or_failing() -> None:
    harness = Harness([ScriptedLink(ping=NodeTimeout("slow"))])
    assert await harness.keeper.ping(1) is False
    try:
        harness.keeper.live()
    except NodeNotConnected as exc:
        assert "n1" in str(exc)
    else:
        raise AssertionError("live() while down")
    harness.keeper.start()
    assert await harness.keeper.wait_up(1)
    assert await harness.keeper.ping(1) is False, "a NodeError is a failed ping"
    await harness.keeper.aclose()


async def test_an_event_the_dispatcher_chokes_on_ends_nothing() -> None:
    seen: list[ChannelEvent] = []

    def choke(node: str, event: ChannelEvent) -> None:
        seen.append(event)
        raise ValueError("bad")

    async def open_link() -> ScriptedLink:
        return ScriptedLink()

    keeper: LinkKeeper[ScriptedLink] = LinkKeeper("n1", "test", open_link, on_event=choke, on_state=None)
    event = ChannelState(attempt_id="a", at=datetime.now(UTC), state="Up")
    keeper.emit(event)
    keeper.emit(event)
    assert seen == [event, event]


async def test_a_close_before_the_first_link_stops_for_good() -> None:
    harness = Harness([ScriptedLink()])
    harness.keeper.close()
    harness.keeper.start()
    await settle()
    assert harness.opens == 0 and not harness.keeper.up
