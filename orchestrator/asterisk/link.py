"""One link to a node kept up, under both drivers: opened, opened again after a failure (0.5 s,
doubling to 5 s), reported up once and down once, pinged; and the node's events handed on.

A driver supplies how to open its link (an AMI session logged in, an ARI event WebSocket
prepared) and the `Link` itself: how it serves until it ends, pings, closes. What the keeper logs
is named after the driver: `<driver>.up`, `<driver>.down`, `<driver>.connect_failed` (debug),
`<driver>.session_failed`, `<driver>.on_event_failed`, `<driver>.on_state_failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar

import structlog

from orchestrator.domain.dialing import NodeError, NodeNotConnected
from orchestrator.domain.events import ChannelEvent
from orchestrator.domain.ports import EventCallback, StateCallback

log = structlog.get_logger(__name__)

FIRST_RETRY_S = 0.5
LAST_RETRY_S = 5.0


class Link(Protocol):
    """One open link to a node, from the moment it can be used until it ends."""

    retry_after_s: float | None
    """Set when the link ended in a way that says to wait this long before the next one."""

    async def serve(self) -> None:
        """Until the link ends (the node or the network ended it)."""

    async def ping(self, timeout: float) -> bool: ...

    async def close(self) -> None: ...

    def ended(self) -> dict[str, Any]:
        """How it ended, for the down log."""


L = TypeVar("L", bound=Link)


class LinkKeeper(Generic[L]):
    """Keeps one link to `node` up until `close()`.

    `open_link` opens the next link, or raises (a `NodeError` when the node is not there: no
    more than a debug line, since it is retried). `about()` gives the up log's fields. `on_up`
    is told of each link once it is up, before the dispatcher is. `around` is entered before the
    first link and left after the last (what outlives a link, e.g. an HTTP session). `sleep`
    waits between attempts (a test's, to count them).
    """

    def __init__(
        self,
        node: str,
        driver: str,
        open_link: Callable[[], Awaitable[L]],
        *,
        on_event: EventCallback,
        on_state: StateCallback | None,
        about: Callable[[], dict[str, Any]] = dict,
        on_up: Callable[[L], None] | None = None,
        around: Callable[[], AbstractAsyncContextManager[object]] = contextlib.nullcontext,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._node = node
        self._driver = driver
        self._open_link = open_link
        self._on_event = on_event
        self._on_state = on_state
        self._about = about
        self._on_up = on_up
        self._around = around
        self._sleep = sleep
        self._up = asyncio.Event()
        self._link: L | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.opened = 0
        """Links opened so far: a request that spans another one may have had its events go
        by on neither."""

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def live(self) -> L:
        """The link, while it is up."""
        if self._link is None or not self.up:
            raise NodeNotConnected(f"node {self._node} is not connected")
        return self._link

    def start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.ensure_future(self._run())

    async def wait_up(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """No more links; the one up is closed as the keeper's task ends."""
        self._closing = True
        self._up.clear()
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        """close(), then wait until the link (and what `around` holds) is closed."""
        self.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def ping(self, timeout: float) -> bool:
        """The link is up and the node answers on it."""
        link = self._link
        if link is None or not self.up:
            return False
        try:
            return await link.ping(timeout)
        except NodeError:
            return False

    def emit(self, event: ChannelEvent) -> None:
        """One of the node's events, to the dispatcher."""
        try:
            self._on_event(self._node, event)
        except Exception:
            # One bad event must not end the stream of every other call.
            log.exception(f"{self._driver}.on_event_failed", node=self._node, kind=type(event).__name__)

    # ---- the keeper's task -----------------------------------------------------------------

    async def _run(self) -> None:
        async with self._around():
            delay = FIRST_RETRY_S
            while not self._closing:
                link = await self._open()
                if link is not None:
                    failed = await self._hold(link)
                    if link.retry_after_s is not None:
                        delay = link.retry_after_s
                    elif not failed:
                        delay = FIRST_RETRY_S
                        continue  # a link that was up and ended is opened again at once
                await self._sleep(delay)
                delay = min(delay * 2, LAST_RETRY_S)

    async def _open(self) -> L | None:
        try:
            return await self._open_link()
        except NodeError as exc:
            log.debug(f"{self._driver}.connect_failed", node=self._node, error=str(exc))
        except Exception:
            # Never let one bad session end the keeper: the node would stay down for good.
            log.exception(f"{self._driver}.session_failed", node=self._node)
        return None

    async def _hold(self, link: L) -> bool:
        """The link, up until it ends; True if it ended by an error of ours."""
        self._link = link
        self.opened += 1
        self._up.set()
        log.info(f"{self._driver}.up", node=self._node, **self._about())
        if self._on_up is not None:
            self._on_up(link)
        # Told only now, once the link is ready (for AMI: the version and the boot read):
        # whoever hears of a node coming back can tell a restart from a link that was cut.
        self._report(True)
        try:
            await link.serve()
        except Exception:
            log.exception(f"{self._driver}.session_failed", node=self._node)
            return True
        finally:
            self._up.clear()
            self._link = None
            await link.close()
            if not self._closing:
                log.warning(f"{self._driver}.down", node=self._node, **link.ended())
                self._report(False)
        return False

    def _report(self, up: bool) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(self._node, up)
        except Exception:
            log.exception(f"{self._driver}.on_state_failed", node=self._node, up=up)


class KeptNode(Generic[L]):
    """A driver's node, for the part of the `DialNode` port its LinkKeeper answers."""

    _keeper: LinkKeeper[L]

    @property
    def up(self) -> bool:
        return self._keeper.up

    def connect(self) -> None:
        self._keeper.start()

    async def wait_up(self, timeout: float) -> bool:
        return await self._keeper.wait_up(timeout)

    def close(self) -> None:
        self._keeper.close()

    async def aclose(self) -> None:
        """close(), then wait until the link (and what outlives links) is closed."""
        self.close()
        await self._keeper.aclose()

    async def ping(self, timeout: float = 2.0) -> bool:
        return await self._keeper.ping(timeout)
