"""AMI adapter (panoramisk): one connection per Asterisk node.

panoramisk writes `Key: Value` lines as given and Asterisk ends a header at a bare LF, so every
value is checked here, whatever the API already checked: CR, LF or NUL never reach the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from orchestrator.asterisk.ami_events import ami_event
from orchestrator.asterisk.errors import ErrorTable, map_errors
from orchestrator.domain.dialing import (
    OUTBOUND_CONTEXT,
    NodeError,
    NodeLinkFailed,
    NodeNotConnected,
    NodeTimeout,
    OriginateOutcome,
    OriginateRequest,
)
from orchestrator.domain.ports import EventCallback

log = structlog.get_logger(__name__)


HANGUP_TIMEOUT_S = 10.0
"""The longest a Hangup waits for its reply (panoramisk drops a pending one with its link)."""


class AmiError(NodeError):
    pass


class AmiNotConnected(AmiError, NodeNotConnected):
    pass


class UnsafeHeaderValue(AmiError):
    """A value would have split or ended an AMI header."""


AMI_ERRORS: ErrorTable = (
    # asyncio.wait_for ran out: a node that stalls, or an action panoramisk forgot when its link
    # dropped (Originate and Hangup are never sent again, so their replies never come).
    (TimeoutError, NodeTimeout),
    # panoramisk writes through its transport and logs a failed write itself; a socket error
    # that still escapes is the link's.
    (OSError, NodeLinkFailed),
)
"""What the AMI driver's calls (originate, hangup, channel_ids, ping, the version read) can
raise, as the port's errors; panoramisk has no errors of its own."""


def header_value(value: object) -> str:
    text = str(value)
    if any(char in text for char in ("\r", "\n", "\x00")):
        raise UnsafeHeaderValue(f"refusing an AMI header value containing CR, LF or NUL: {text!r}")
    return text


def originate_action(request: OriginateRequest) -> dict[str, Any]:
    action: dict[str, Any] = {
        "Action": "Originate",
        "ActionID": header_value(request.attempt_id),
        "ChannelId": header_value(request.attempt_id),
        "Channel": header_value(request.channel),
        "Context": OUTBOUND_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "Async": "true",
        "Timeout": str(int(request.timeout_ms)),
        "Variable": [f"{header_value(k)}={header_value(v)}" for k, v in sorted(request.variables.items())],
    }
    if request.caller_id:
        action["CallerID"] = header_value(request.caller_id)
    return action


def parse_event_fields(block: str) -> dict[str, str]:
    """The `Key: Value` lines of one AMI message as a plain dict. A key seen twice keeps its
    first value (only ChanVariable-style headers repeat, and nothing here reads them)."""
    fields: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in fields:
            fields[key] = value
    return fields


PlainEventHandler = Callable[[Manager, dict[str, str]], None]


class EventStreamProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, with unsolicited events handed over as plain dicts.

    At a few hundred calls a second the event stream is the dispatcher's largest cost, and most
    of it was panoramisk building a case-insensitive `Message` per event and matching it against
    registered patterns. Here an event that answers no pending action goes straight to
    `on_event` as a dict; responses, the events of an action (OriginateResponse, CoreShowChannel
    ...) and Shutdown still take panoramisk's own path, unchanged.
    """

    version: str | None  # set by connection_made, as in panoramisk

    def __init__(self, on_event: PlainEventHandler) -> None:
        super().__init__()
        self._on_plain_event = on_event

    def data_received(self, data: bytes) -> None:
        text = data.decode(getattr(self, "encoding", "utf8"), "ignore")
        if self.version is None and text.startswith("Asterisk Call Manager/"):
            self.version = text.partition("\r\n")[0].partition("/")[2].strip()
        if self.queue:
            text = self.queue.popleft() + text
        blocks = text.split("\r\n\r\n")
        self.queue.append(blocks.pop())
        for raw in blocks:
            block = raw.strip()
            fields = parse_event_fields(block)
            event = fields.get("Event")
            if event is not None and event != "Shutdown" and fields.get("ActionID") not in self.responses:
                self._on_plain_event(self.factory, fields)
                continue
            message = Message.from_line(block)
            if message is not None:
                self.handle_message(message)


class AmiNode:
    """A logged-in AMI session to one node, kept up by this class.

    panoramisk's own reconnect loop is switched off: after a long outage it was seen to churn
    connections without ever logging in again. Each (re)connection gets a fresh Manager, and a
    retired Manager is disarmed so a stray timer can never bring a second event stream back.
    """

    driver = "ami"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        on_event: EventCallback,
        on_state: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.name = name
        self._host, self._port = header_value(host), port
        self._username, self._secret = header_value(username), header_value(secret)
        self._on_event = on_event
        self._on_state = on_state
        self._logged_in = asyncio.Event()
        self.version: str | None = None
        self.boot_id: str | None = None
        self._manager: Manager | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closing = False

    def _new_manager(self) -> Manager:
        manager = Manager(
            loop=asyncio.get_running_loop(),
            host=self._host,
            port=self._port,
            username=self._username,
            secret=self._secret,
            ping_delay=5,
            ping_interval=5,
            reconnect_timeout=10**9,  # reconnecting is _keep_connected's job
            # Never resend an Originate after a reconnect: it may already have been dialed.
            forgetable_actions=("ping", "login", "originate", "hangup"),
            on_login=self._logged_in_cb,
            on_disconnect=self._disconnected_cb,
            protocol_factory=lambda: EventStreamProtocol(self._dispatch),
        )
        return manager

    def _retire(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.connect = lambda *args, **kwargs: None
            manager.close()

    @property
    def up(self) -> bool:
        return self._logged_in.is_set()

    def connect(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.ensure_future(self._keep_connected())

    async def _keep_connected(self) -> None:
        delay = 0.5
        while not self._closing:
            if self.up:
                await asyncio.sleep(0.5)
                continue
            self._retire()
            self._manager = self._new_manager()
            self._manager.connect()
            if await self.wait_up(5.0):
                delay = 0.5
                await self._read_version()
                # Told only now, with the version and the boot known: whoever hears of a node
                # coming back can tell a restart from a link that was cut.
                if self.up and self._on_state:
                    self._on_state(self.name, True)
                continue
            self._retire()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _read_version(self) -> None:
        """Asterisk's own version (the login banner only gives the AMI protocol's, e.g. 11.0.0)
        and when it started (CoreStatus, in the node's own clock: only compared with itself)."""
        self.boot_id = None
        try:
            settings = await self._send({"Action": "CoreSettings"}, 5.0)
            status = await self._send({"Action": "CoreStatus"}, 5.0)
        except NodeError as exc:
            log.warning("ami.version_unknown", node=self.name, error=str(exc))
            return
        version = settings.get("AsteriskVersion") if settings.get("Response") == "Success" else None
        if version:
            self.version = str(version)
        if status.get("Response") == "Success" and status.get("CoreStartupTime"):
            self.boot_id = f"{status.get('CoreStartupDate', '')} {status.get('CoreStartupTime')}"

    async def wait_up(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._logged_in.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._closing = True
        if self._keeper is not None:
            self._keeper.cancel()
        self._retire()
        self._logged_in.clear()

    def _live(self) -> Manager:
        if self._manager is None or self._manager.protocol is None or not self.up:
            raise AmiNotConnected(f"node {self.name} is not connected")
        return self._manager

    async def _send(self, action: dict[str, Any], timeout: float, *, as_list: bool | None = None) -> Any:
        """One action and its reply (a list of messages for an action that has several), within
        `timeout`; every error the port's."""
        with map_errors(AMI_ERRORS, f"{action['Action']} on {self.name}", within_s=timeout):
            return await asyncio.wait_for(self._live().send_action(action, as_list=as_list), timeout)

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        """Send an async Originate and wait for its OriginateResponse (answer or failure)."""
        result = await self._send(originate_action(request), wait_s)
        messages = result if isinstance(result, list) else [result]
        final = messages[-1]
        if final.get("Event") == "OriginateResponse":
            try:
                reason = int(final.get("Reason", "0") or 0)
            except ValueError as exc:
                raise AmiError(f"Originate on {self.name}: a reason that is not a number") from exc
            return OriginateOutcome(success=final.get("Response") == "Success", reason=reason, message="")
        # No OriginateResponse: Asterisk refused the action itself (permission, bad channel...).
        return OriginateOutcome(success=False, reason=0, message=str(final.get("Message", "")))

    async def hangup(self, channel: str, cause: int = 16, timeout: float = HANGUP_TIMEOUT_S) -> None:
        """By channel name or Uniqueid (Asterisk looks up either). Bounded: a Hangup is
        forgotten by panoramisk when the link drops, and its reply would never come."""
        await self._send({"Action": "Hangup", "Channel": header_value(channel), "Cause": str(cause)}, timeout)

    async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]:
        """Every channel the node has now (CoreShowChannels): Uniqueid → state ("Up", "Ringing"…)."""
        reply = await self._send({"Action": "CoreShowChannels"}, timeout, as_list=True)
        messages = reply if isinstance(reply, list) else [reply]
        return {
            str(m.get("Uniqueid")): str(m.get("ChannelStateDesc", ""))
            for m in messages
            if m.get("Event") == "CoreShowChannel"
        }

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            reply = await self._send({"Action": "Ping"}, timeout)
        except NodeError:
            return False
        return bool(reply.get("Response") == "Success")

    def _logged_in_cb(self, manager: Manager) -> None:
        if self._manager is None or manager is not self._manager:
            return
        self.version = getattr(manager.protocol, "version", None)
        self._logged_in.set()
        log.info("ami.up", node=self.name, version=self.version)

    def _disconnected_cb(self, manager: Manager, exc: Exception | None) -> None:
        if manager is not self._manager:
            return  # a retired connection
        was_up = self._logged_in.is_set()
        self._logged_in.clear()
        if was_up:
            log.warning("ami.down", node=self.name, error=str(exc))
        if self._on_state:
            self._on_state(self.name, False)

    def _dispatch(self, manager: Manager, fields: dict[str, str]) -> None:
        if manager is not self._manager:
            return
        event = ami_event(fields, datetime.now(UTC))
        if event is not None:
            self._on_event(self.name, event)
