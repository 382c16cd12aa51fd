"""ARI adapter (aiohttp REST + one event WebSocket per node): the same `DialNode` as AmiNode.
The WebSocket is kept up by a LinkKeeper (link.py, ari_link.py); REST is ari_rest.py.

Calls are originated straight into the dialplan (context sespcl-outbound), not into Stasis: the
WebSocket only watches them, which `subscribeAll=true` allows for every channel of the node.
Its events become the domain's typed events in ari_events.py.

A channel is named by its *id* (the attempt id), not its name (`PJSIP/trunk-0000002a`): ARI
addresses channels by id, and the dispatcher hangs up `state.channel`. `hangup()` still accepts
a name (an attempt recorded by an AMI dispatcher) and looks its id up.

Verified on Asterisk 22.10.1:
- unknown endpoint or technology: POST answers 500 {"error": "Allocation failed"}, no channel
- a second WebSocket with the same app name takes the app over: the first one gets
  ApplicationReplaced and then silence. Every dispatcher needs its own app name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from orchestrator.asterisk.ari_events import ari_event, outcome_for
from orchestrator.asterisk.ari_link import AriLink
from orchestrator.asterisk.ari_rest import (
    ARI_ERRORS,
    AriError,
    AriRefused,
    AriRest,
    ari_value,
    event_filter,
)
from orchestrator.asterisk.ari_rest import originate_params as originate_params  # tests/fixtures use it
from orchestrator.asterisk.errors import map_errors
from orchestrator.asterisk.link import KeptNode, LinkKeeper
from orchestrator.domain.dialing import NodeError, OriginateOutcome, OriginateRequest
from orchestrator.domain.outcome import REASON_ANSWERED, REASON_FAILURE
from orchestrator.domain.ports import EventCallback, StateCallback

log = structlog.get_logger(__name__)


class AriNode(KeptNode[AriLink]):
    """An ARI event WebSocket to one node, kept up by its LinkKeeper, plus REST calls. Its ping
    checks the node still has our application (AriLink.ping).

    `app` must be unique per process using the node: Asterisk gives an app's events to the
    most recent WebSocket only (the previous one is sent ApplicationReplaced, then nothing).
    """

    driver = "ari"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        username: str,
        password: str,
        on_event: EventCallback,
        on_state: StateCallback | None = None,
        app: str = "sespcl",
    ) -> None:
        self.name = name
        self.version: str | None = None
        self.boot_id: str | None = None
        self._rest = AriRest(name, url, username, password)
        self._app = ari_value(app)
        self._keeper: LinkKeeper[AriLink] = LinkKeeper(
            name,
            self.driver,
            self._open,
            on_event=on_event,
            on_state=on_state,
            about=lambda: {"version": self.version, "app": self._app},
            on_up=self._link_up,
            around=self._rest.opened,
        )
        # Originates waiting for their channel to answer or end, by channel id; `_posted` are
        # those Asterisk has accepted (the only ones a resync may look up).
        self._pending: dict[str, asyncio.Future[OriginateOutcome]] = {}
        self._posted: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    def close(self) -> None:
        """Stop reconnecting; the keeper's task closes the WebSocket and the HTTP session."""
        super().close()
        self._fail_pending(AriError(f"node {self.name} closed"))

    # ---- the link -----------------------------------------------------------------------------

    async def _open(self) -> AriLink:
        link = AriLink(self.name, self._app, await self._rest.events(self._app), self._rest, self._on_message)
        try:
            await self._prepare()
        except BaseException:
            await link.close()
            raise
        return link

    async def _prepare(self) -> None:
        """Version, start time and event filter. None is vital: events are filtered here too."""
        self.boot_id = None
        try:
            info = await self._rest.request("GET", "asterisk", "info")
            system = info.get("system") if isinstance(info, dict) else None
            version = system.get("version") if isinstance(system, dict) else None
            self.version = str(version) if version else None
            status = info.get("status") if isinstance(info, dict) else None
            started = status.get("startup_time") if isinstance(status, dict) else None
            self.boot_id = str(started) if started else None
        except NodeError as exc:
            log.warning("ari.info_failed", node=self.name, error=str(exc))
        await self._filter_events()

    async def _filter_events(self) -> None:
        # Asterisk >= 16; cuts the ChannelVarset/ChannelDialplan/DeviceState chatter (~75 %). The
        # app is registered a moment after the WebSocket upgrade: a 404 here is retried.
        for attempt in range(5):
            try:
                await self._rest.request(
                    "PUT", "applications", self._app, "eventFilter", json_body=event_filter()
                )
                return
            except AriRefused as exc:
                if exc.status != 404 or attempt == 4:
                    log.warning("ari.event_filter_failed", node=self.name, error=str(exc))
                    return
            except NodeError as exc:
                log.warning("ari.event_filter_failed", node=self.name, error=str(exc))
                return
            await asyncio.sleep(0.2)

    def _link_up(self, link: AriLink) -> None:
        if self._posted:
            self._spawn(self._resync_pending())

    def _on_message(self, message: Mapping[str, Any]) -> None:
        event = ari_event(message, datetime.now(UTC))
        if event is None:
            return
        waiter = self._pending.get(event.attempt_id)
        if waiter is not None and not waiter.done():
            outcome = outcome_for(event)
            if outcome is not None:
                waiter.set_result(outcome)
        self._keeper.emit(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _resync_pending(self) -> None:
        """After a reconnection: settle originates whose answer or end went by unseen."""
        for channel_id in list(self._posted):
            await self._resync_one(channel_id)

    async def _resync_one(self, channel_id: str) -> None:
        waiter = self._pending.get(channel_id)
        if waiter is None or waiter.done():
            return
        try:
            channel = await self._rest.request("GET", "channels", channel_id)
        except AriRefused as exc:
            if exc.status == 404 and not waiter.done():
                # Ended while unseen: answered and completed, or not answered at all. Not a
                # failure to guess; the caller reads the outcome from the node's CDR.
                waiter.set_exception(
                    AriError(f"channel {channel_id} ended on {self.name} while events were not received")
                )
            return
        except NodeError:
            return
        if isinstance(channel, dict) and channel.get("state") == "Up" and not waiter.done():
            waiter.set_result(OriginateOutcome(True, REASON_ANSWERED))

    def _fail_pending(self, exc: Exception) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: no "never retrieved" warning if nobody awaits

    # ---- what the dispatcher asks -------------------------------------------------------------

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        """Create the channel (id = attempt id) into the outbound dialplan, then wait until it is
        answered (success, reason 4) or ends (failure, a reason in Asterisk's codes for its
        cause)."""
        channel_id = ari_value(request.attempt_id)
        self._keeper.live()
        if channel_id in self._pending:
            raise AriError(f"attempt {channel_id} is already being originated on {self.name}")
        # Registered before the POST: the channel's first events can beat the HTTP reply.
        waiter: asyncio.Future[OriginateOutcome] = asyncio.get_running_loop().create_future()
        self._pending[channel_id] = waiter
        opened = self._keeper.opened
        try:
            with map_errors(ARI_ERRORS, f"Originate on {self.name}", within_s=wait_s):
                async with asyncio.timeout(wait_s):
                    refusal = await self._rest.create_channel(channel_id, request)
                    if refusal is not None:  # no channel
                        return OriginateOutcome(False, REASON_FAILURE, refusal)
                    self._posted.add(channel_id)
                    if self._keeper.opened != opened:
                        # Reconnected while the POST was out: the resync did not know of it.
                        self._spawn(self._resync_one(channel_id))
                    return await waiter
        finally:
            self._pending.pop(channel_id, None)
            self._posted.discard(channel_id)

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang up by channel id; a channel *name* (it has a '/') is looked up first. A channel
        already gone is not an error."""
        self._keeper.live()
        channel_id: str | None = ari_value(channel)
        if "/" in channel:
            channel_id = await self._id_for_name(channel)
            if channel_id is None:
                return
        try:
            await self._rest.request(
                "DELETE", "channels", channel_id, params={"reason_code": str(int(cause))}
            )
        except AriRefused as exc:
            if exc.status != 404:
                raise

    async def _id_for_name(self, name: str) -> str | None:
        channels = await self._rest.request("GET", "channels")
        for item in channels or []:
            if isinstance(item, dict) and item.get("name") == name:
                return str(item["id"])
        return None

    async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]:
        """Every channel the node has now: id → state ("Up", "Ringing"…)."""
        self._keeper.live()
        channels = await self._rest.request("GET", "channels", timeout=timeout)
        return {
            str(item["id"]): str(item.get("state", ""))
            for item in channels or []
            if isinstance(item, dict) and "id" in item
        }
