"""AMI adapter (panoramisk): one logged-in session per Asterisk node, kept up by a LinkKeeper
(link.py), each session on a fresh Manager (ami_panoramisk.py is all that knows panoramisk's
internals). Its events become the domain's typed events in ami_events.py.

panoramisk writes `Key: Value` lines as given and Asterisk ends a header at a bare LF, so every
value is checked here, whatever the API already checked: CR, LF or NUL never reach the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from panoramisk import Manager

from orchestrator.asterisk import ami_panoramisk
from orchestrator.asterisk.ami_events import ami_event
from orchestrator.asterisk.errors import ErrorTable, map_errors
from orchestrator.asterisk.link import KeptNode, LinkKeeper
from orchestrator.domain.dialing import (
    OUTBOUND_CONTEXT,
    NodeError,
    NodeLinkFailed,
    NodeTimeout,
    OriginateOutcome,
    OriginateRequest,
)
from orchestrator.domain.ports import EventCallback, StateCallback

log = structlog.get_logger(__name__)


HANGUP_TIMEOUT_S = 10.0
"""The longest a Hangup waits for its reply (panoramisk drops a pending one with its link)."""
LOGIN_TIMEOUT_S = 5.0
VERSION_TIMEOUT_S = 5.0


class AmiError(NodeError):
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


def variable_value(value: object) -> str:
    """A channel variable's value for Originate's Variable header: Asterisk splits that header
    at bare commas into several assignments, so a comma is escaped (the node unescapes it): a
    value can never set a second variable."""
    return header_value(value).replace(",", "\\,")


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
        "Variable": [f"{header_value(k)}={variable_value(v)}" for k, v in sorted(request.variables.items())],
    }
    if request.caller_id:
        action["CallerID"] = header_value(request.caller_id)
    return action


def originate_outcome(result: Any, node: str) -> OriginateOutcome:
    """What an async Originate's reply says: its OriginateResponse (answered, or the reason it
    failed), or the action's own refusal (permission, a bad channel …)."""
    messages = result if isinstance(result, list) else [result]
    final = messages[-1]
    if final.get("Event") != "OriginateResponse":
        return OriginateOutcome(success=False, reason=0, message=str(final.get("Message", "")))
    try:
        reason = int(final.get("Reason", "0") or 0)
    except ValueError as exc:
        raise AmiError(f"Originate on {node}: a reason that is not a number") from exc
    return OriginateOutcome(success=final.get("Response") == "Success", reason=reason, message="")


@dataclass(frozen=True)
class AmiLogin:
    host: str
    port: int
    username: str
    secret: str


class AmiLink:
    """One AMI session, from its login until its connection is lost: a Manager of its own, so
    that nothing of a lost session (a late event, a timer) reaches the next one."""

    retry_after_s: float | None = None

    def __init__(
        self,
        node: str,
        login: AmiLogin,
        on_fields: Callable[[dict[str, str]], None],
        *,
        manager: Manager | None = None,
    ) -> None:
        """`manager`: one already made (tests); by default a new one for `login`."""
        self._node = node
        self._on_fields = on_fields
        self._logged_in = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_by: Exception | None = None
        self._retired = False
        self._manager = manager or ami_panoramisk.new_manager(
            host=login.host,
            port=login.port,
            username=login.username,
            secret=login.secret,
            on_login=self._login_cb,
            on_disconnect=self._disconnect_cb,
            on_event=self._event_cb,
        )

    @property
    def banner_version(self) -> str | None:
        return ami_panoramisk.banner_version(self._manager)

    async def log_in(self) -> None:
        self._manager.connect()
        try:
            await asyncio.wait_for(self._logged_in.wait(), LOGIN_TIMEOUT_S)
        except TimeoutError as exc:
            raise NodeTimeout(f"login to {self._node}: no reply within {LOGIN_TIMEOUT_S:g} s") from exc

    async def send(self, action: dict[str, Any], timeout: float, *, as_list: bool | None = None) -> Any:
        """One action and its reply (a list of messages for an action that has several), within
        `timeout`; every error the port's."""
        with map_errors(AMI_ERRORS, f"{action['Action']} on {self._node}", within_s=timeout):
            reply = ami_panoramisk.send(self._manager, action, as_list=as_list)
            return await asyncio.wait_for(reply, timeout)

    async def serve(self) -> None:
        await self._lost.wait()

    async def ping(self, timeout: float) -> bool:
        reply = await self.send({"Action": "Ping"}, timeout)
        return bool(reply.get("Response") == "Success")

    async def close(self) -> None:
        self._retired = True
        ami_panoramisk.retire(self._manager)

    def ended(self) -> dict[str, Any]:
        return {"error": str(self._lost_by)}

    # panoramisk's callbacks; a retired session's are ignored.

    def _login_cb(self, manager: Manager) -> None:
        if not self._retired:
            self._logged_in.set()

    def _disconnect_cb(self, manager: Manager, exc: Exception | None) -> None:
        if not self._retired:
            self._lost_by = exc
            self._lost.set()

    def _event_cb(self, manager: Manager, fields: dict[str, str]) -> None:
        if not self._retired:
            self._on_fields(fields)


class AmiNode(KeptNode[AmiLink]):
    """A logged-in AMI session to one node, kept up by its LinkKeeper.

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
        on_state: StateCallback | None = None,
    ) -> None:
        self.name = name
        self._login = AmiLogin(header_value(host), port, header_value(username), header_value(secret))
        self.version: str | None = None
        self.boot_id: str | None = None
        self._keeper: LinkKeeper[AmiLink] = LinkKeeper(
            name,
            self.driver,
            self._open,
            on_event=on_event,
            on_state=on_state,
            about=lambda: {"version": self.version},
        )

    async def _open(self) -> AmiLink:
        """A new session, logged in, with the node's version and start time read."""
        link = AmiLink(self.name, self._login, self._on_fields)
        try:
            await link.log_in()
            self.version = link.banner_version
            await self._read_version(link)
        except BaseException:
            await link.close()
            raise
        return link

    async def _read_version(self, link: AmiLink) -> None:
        """Asterisk's own version (the login banner only gives the AMI protocol's, e.g. 11.0.0)
        and when it started (CoreStatus, in the node's own clock: only compared with itself)."""
        self.boot_id = None
        try:
            settings = await link.send({"Action": "CoreSettings"}, VERSION_TIMEOUT_S)
            status = await link.send({"Action": "CoreStatus"}, VERSION_TIMEOUT_S)
        except NodeError as exc:
            log.warning("ami.version_unknown", node=self.name, error=str(exc))
            return
        version = settings.get("AsteriskVersion") if settings.get("Response") == "Success" else None
        if version:
            self.version = str(version)
        if status.get("Response") == "Success" and status.get("CoreStartupTime"):
            self.boot_id = f"{status.get('CoreStartupDate', '')} {status.get('CoreStartupTime')}"

    def _on_fields(self, fields: dict[str, str]) -> None:
        event = ami_event(fields, datetime.now(UTC))
        if event is not None:
            self._keeper.emit(event)

    # ---- what the dispatcher asks -------------------------------------------------------------

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        """Send an async Originate and wait for its OriginateResponse (answer or failure)."""
        result = await self._keeper.live().send(originate_action(request), wait_s)
        return originate_outcome(result, self.name)

    async def hangup(self, channel: str, cause: int = 16, timeout: float = HANGUP_TIMEOUT_S) -> None:
        """By channel name or Uniqueid (Asterisk looks up either). Bounded: a Hangup is
        forgotten by panoramisk when the link drops, and its reply would never come."""
        action = {"Action": "Hangup", "Channel": header_value(channel), "Cause": str(cause)}
        await self._keeper.live().send(action, timeout)

    async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]:
        """Every channel the node has now (CoreShowChannels): Uniqueid → state ("Up", "Ringing"…)."""
        reply = await self._keeper.live().send({"Action": "CoreShowChannels"}, timeout, as_list=True)
        messages = reply if isinstance(reply, list) else [reply]
        return {
            str(m.get("Uniqueid")): str(m.get("ChannelStateDesc", ""))
            for m in messages
            if m.get("Event") == "CoreShowChannel"
        }
