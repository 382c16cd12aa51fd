"""ARI adapter (aiohttp REST + one event WebSocket per node): the same `DialNode` as AmiNode.

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
import base64
import contextlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from orchestrator.asterisk.ari_events import EVENT_TYPES, ari_event, outcome_for
from orchestrator.asterisk.errors import ErrorTable, map_errors
from orchestrator.domain.dialing import (
    OUTBOUND_CONTEXT,
    NodeError,
    NodeLinkFailed,
    NodeNotConnected,
    NodeRefused,
    NodeTimeout,
    OriginateOutcome,
    OriginateRequest,
)
from orchestrator.domain.outcome import REASON_ANSWERED, REASON_FAILURE
from orchestrator.domain.ports import EventCallback

log = structlog.get_logger(__name__)

REST_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
HEARTBEAT_S = 5.0
"""WebSocket pings: a node that hangs with its TCP session open is noticed within seconds."""


class AriError(NodeError):
    pass


class AriNotConnected(AriError, NodeNotConnected):
    pass


class AriRefused(AriError, NodeRefused):
    """ARI answered with a non-2xx status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}".strip())
        self.status = status


class UnsafeAriValue(AriError):
    """A value that could split a header or be cut short by Asterisk's C strings."""


ARI_ERRORS: ErrorTable = (
    # asyncio's and aiohttp's (ServerTimeoutError, ConnectionTimeoutError, SocketTimeoutError).
    (TimeoutError, NodeTimeout),
    # The node answered no: the WebSocket upgrade refused (WSServerHandshakeError), and the like.
    (aiohttp.ClientResponseError, NodeRefused),
    # Connection refused, reset or cut (ClientOSError, ServerDisconnectedError …), a body cut off.
    (aiohttp.ClientConnectionError, NodeLinkFailed),
    (aiohttp.ClientPayloadError, NodeLinkFailed),
    (aiohttp.ClientError, NodeError),
    (OSError, NodeLinkFailed),
)
"""What the ARI driver's calls (REST, the WebSocket's opening) can raise, as the port's errors;
a non-2xx reply is `AriRefused` (a `NodeRefused`)."""


# ---- pure helpers (no I/O) ---------------------------------------------------------------------


def ari_value(value: object) -> str:
    """The text of a value bound for ARI; CR, LF and NUL are refused (as AMI's header_value)."""
    text = str(value)
    if any(char in text for char in ("\r", "\n", "\x00")):
        raise UnsafeAriValue(f"refusing an ARI value containing CR, LF or NUL: {text!r}")
    return text


def path_segment(value: object) -> str:
    """One percent-encoded URL path segment: '/', '?', '#' and '%' cannot change the route."""
    text = ari_value(value)
    if text in ("", ".", ".."):
        raise UnsafeAriValue(f"refusing {text!r} as an ARI path segment")
    return quote(text, safe="")


def base_url(url: str) -> str:
    """The node's ARI root (e.g. http://127.0.10.1:8088/ari), checked, without a trailing '/'."""
    parsed = URL(ari_value(url))
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.query_string or parsed.fragment:
        raise AriError(f"not an ARI base URL: {url!r}")
    return str(parsed).rstrip("/")


def rest_url(base: str, *segments: object) -> URL:
    # encoded=True: yarl must not decode %2F back into a '/'.
    return URL(base + "/" + "/".join(path_segment(s) for s in segments), encoded=True)


def basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{ari_value(username)}:{ari_value(password)}".encode()).decode("ascii")
    return f"Basic {token}"


def originate_params(request: OriginateRequest) -> tuple[dict[str, str], dict[str, Any]]:
    """(query, JSON body) of `POST /channels/{attempt_id}` into the outbound dialplan."""
    query = {
        "endpoint": ari_value(request.channel),
        "context": OUTBOUND_CONTEXT,
        "extension": "s",
        "priority": "1",
        # ARI counts whole seconds; never round a short timeout down to "no timeout".
        "timeout": str(max(1, math.ceil(request.timeout_ms / 1000))),
    }
    if request.caller_id:
        query["callerId"] = ari_value(request.caller_id)
    variables = {ari_value(k): ari_value(v) for k, v in sorted(request.variables.items())}
    return query, {"variables": variables}


def event_filter() -> dict[str, Any]:
    """Body of `PUT /applications/{app}/eventFilter`. ApplicationReplaced must stay allowed:
    the filter applies to it too, and without it a replaced socket just goes silent."""
    return {"allowed": [{"type": name} for name in (*EVENT_TYPES, "ApplicationReplaced")]}


async def _refusal(response: aiohttp.ClientResponse) -> AriRefused:
    """ARI's own words for a refusal ({"error": ...} or {"message": ...}), else the raw body."""
    body = await response.text()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        body = str(data.get("error") or data.get("message") or body)
    return AriRefused(response.status, body.strip()[:200])


# ---- the node -----------------------------------------------------------------------------------


class AriNode:
    """An ARI event WebSocket to one node, kept up by this class, plus REST calls.

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
        on_state: Callable[[str, bool], None] | None = None,
        app: str = "sespcl",
    ) -> None:
        self.name = name
        self.version: str | None = None
        self.boot_id: str | None = None
        self._base = base_url(url)
        self._app = ari_value(app)
        self._auth = basic_auth(username, password)
        self._on_event = on_event
        self._on_state = on_state
        self._connected = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closing = False
        self._replaced = False
        # Originates waiting for their channel to answer or end, by channel id; `_posted` are
        # those Asterisk has accepted (the only ones a resync may look up).
        self._pending: dict[str, asyncio.Future[OriginateOutcome]] = {}
        self._posted: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self._connections = 0
        """Event WebSockets opened so far: an Originate whose POST spans a new one may have
        had its events go by on neither."""

    @property
    def up(self) -> bool:
        return self._connected.is_set()

    def connect(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.ensure_future(self._keep_connected())

    async def wait_up(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Stop reconnecting; the keeper's cleanup closes the WebSocket and the HTTP session."""
        self._closing = True
        self._connected.clear()
        if self._keeper is not None:
            self._keeper.cancel()
        self._fail_pending(AriError(f"node {self.name} closed"))

    async def aclose(self) -> None:
        """close(), then wait until the WebSocket and the HTTP session are closed."""
        self.close()
        if self._keeper is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    # ---- connection ---------------------------------------------------------------------------

    async def _keep_connected(self) -> None:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": self._auth}, timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_S)
        )
        delay = 0.5
        try:
            while not self._closing:
                try:
                    was_up = await self._run_socket()
                except Exception:
                    # Never let one bad session end the keeper: the node would stay down for good.
                    log.exception("ari.session_failed", node=self.name)
                    was_up = False
                if self._closing:
                    break
                if self._replaced:
                    # Another client took the app over; retaking it at once would only flap.
                    self._replaced, delay = False, 5.0
                elif was_up:
                    delay = 0.5
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        finally:
            self._connected.clear()
            ws, self._ws = self._ws, None
            session, self._session = self._session, None
            if ws is not None:
                await ws.close()
            await session.close()

    async def _run_socket(self) -> bool:
        """One WebSocket session, until it ends; True if it was ever up."""
        assert self._session is not None
        url = rest_url(self._base, "events").with_query(app=self._app, subscribeAll="true")
        try:
            with map_errors(ARI_ERRORS, f"events WebSocket of {self.name}", within_s=CONNECT_TIMEOUT_S):
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    ws = await self._session.ws_connect(url, heartbeat=HEARTBEAT_S)
        except NodeError as exc:
            log.debug("ari.connect_failed", node=self.name, error=str(exc) or type(exc).__name__)
            return False
        self._ws = ws
        try:
            await self._prepare()
            self._connections += 1
            self._connected.set()
            log.info("ari.up", node=self.name, version=self.version, app=self._app)
            if self._on_state:
                self._on_state(self.name, True)
            if self._posted:
                self._spawn(self._resync_pending())
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._handle(message.data)
                if message.type is aiohttp.WSMsgType.ERROR or self._replaced:
                    break
            return True
        finally:
            was_up = self._connected.is_set()
            self._connected.clear()
            self._ws = None
            await ws.close()
            if was_up and not self._closing:
                log.warning("ari.down", node=self.name, close_code=ws.close_code)
                if self._on_state:
                    self._on_state(self.name, False)

    async def _prepare(self) -> None:
        """Version, start time and event filter. None is vital: events are filtered here too."""
        self.boot_id = None
        try:
            info = await self._request("GET", "asterisk", "info")
            system = info.get("system") if isinstance(info, dict) else None
            version = system.get("version") if isinstance(system, dict) else None
            self.version = str(version) if version else None
            status = info.get("status") if isinstance(info, dict) else None
            started = status.get("startup_time") if isinstance(status, dict) else None
            self.boot_id = str(started) if started else None
        except NodeError as exc:
            log.warning("ari.info_failed", node=self.name, error=str(exc))
        # Asterisk >= 16; cuts the ChannelVarset/ChannelDialplan/DeviceState chatter (~75 %). The
        # app is registered a moment after the WebSocket upgrade: a 404 here is retried.
        for attempt in range(5):
            try:
                await self._request("PUT", "applications", self._app, "eventFilter", json_body=event_filter())
                return
            except AriRefused as exc:
                if exc.status != 404 or attempt == 4:
                    log.warning("ari.event_filter_failed", node=self.name, error=str(exc))
                    return
            except NodeError as exc:
                log.warning("ari.event_filter_failed", node=self.name, error=str(exc))
                return
            await asyncio.sleep(0.2)

    def _handle(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("ari.bad_event", node=self.name, data=data[:200])
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "ApplicationReplaced":
            log.error("ari.app_replaced", node=self.name, app=self._app, hint="app names must be unique")
            self._replaced = True  # _run_socket closes the socket
            return
        typed = ari_event(event, datetime.now(UTC))
        if typed is None:
            return
        waiter = self._pending.get(typed.attempt_id)
        if waiter is not None and not waiter.done():
            outcome = outcome_for(typed)
            if outcome is not None:
                waiter.set_result(outcome)
        try:
            self._on_event(self.name, typed)
        except Exception:
            # One bad event must not end the stream of every other call.
            log.exception("ari.on_event_failed", node=self.name, event=type(typed).__name__)

    def _spawn(self, coro: Any) -> None:
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
            channel = await self._request("GET", "channels", channel_id)
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

    # ---- REST -----------------------------------------------------------------------------------

    def _live(self) -> aiohttp.ClientSession:
        if self._session is None or not self.up:
            raise AriNotConnected(f"node {self.name} is not connected")
        return self._session

    async def _request(
        self,
        method: str,
        *segments: object,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = REST_TIMEOUT_S,
    ) -> Any:
        """One REST call; the decoded JSON reply (None when empty). AriError on a non-2xx."""
        if self._session is None:
            raise AriError(f"node {self.name} is not connected")
        url = rest_url(self._base, *segments)
        with map_errors(ARI_ERRORS, f"{method} {url.path} on {self.name}", within_s=timeout):
            async with self._session.request(
                method,
                url,
                params=dict(params) if params else None,
                json=json_body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                if response.status >= 300:
                    raise await _refusal(response)
                body = await response.read()
        try:
            return json.loads(body) if body.strip() else None
        except ValueError as exc:  # not Asterisk answering (a proxy's page, say)
            raise AriError(f"{self.name}: a reply that is not JSON from {method} {url}") from exc

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        """Create the channel (id = attempt id) into the outbound dialplan, then wait until it is
        answered (success, reason 4) or ends (failure, a reason in AMI's codes for its cause)."""
        query, body = originate_params(request)
        channel_id = ari_value(request.attempt_id)
        session = self._live()
        if channel_id in self._pending:
            raise AriError(f"attempt {channel_id} is already being originated on {self.name}")
        # Registered before the POST: the channel's first events can beat the HTTP reply.
        waiter: asyncio.Future[OriginateOutcome] = asyncio.get_running_loop().create_future()
        self._pending[channel_id] = waiter
        connection = self._connections
        try:
            with map_errors(ARI_ERRORS, f"Originate on {self.name}", within_s=wait_s):
                async with asyncio.timeout(wait_s):
                    refusal = await self._post_channel(session, channel_id, query, body)
                    if refusal is not None:
                        # Refused outright (e.g. "Allocation failed": unknown endpoint): no channel.
                        return OriginateOutcome(False, REASON_FAILURE, refusal)
                    self._posted.add(channel_id)
                    if self._connections != connection:
                        # Reconnected while the POST was out: the resync did not know of it.
                        self._spawn(self._resync_one(channel_id))
                    return await waiter
        finally:
            self._pending.pop(channel_id, None)
            self._posted.discard(channel_id)

    async def _post_channel(
        self, session: aiohttp.ClientSession, channel_id: str, query: dict[str, str], body: Any
    ) -> str | None:
        """`POST /channels/{id}`: None when the node made the channel, else its refusal."""
        async with session.post(
            rest_url(self._base, "channels", channel_id),
            params=query,
            json=body,
            timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_S),
        ) as response:
            if response.status >= 300:
                return str(await _refusal(response))
        return None

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang up by channel id; a channel *name* (it has a '/') is looked up first. A channel
        already gone is not an error."""
        self._live()
        channel_id: str | None = ari_value(channel)
        if "/" in channel:
            channel_id = await self._id_for_name(channel)
            if channel_id is None:
                return
        try:
            await self._request("DELETE", "channels", channel_id, params={"reason_code": str(int(cause))})
        except AriRefused as exc:
            if exc.status != 404:
                raise

    async def _id_for_name(self, name: str) -> str | None:
        channels = await self._request("GET", "channels")
        for item in channels or []:
            if isinstance(item, dict) and item.get("name") == name:
                return str(item["id"])
        return None

    async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]:
        """Every channel the node has now: id → state ("Up", "Ringing"…)."""
        self._live()
        channels = await self._request("GET", "channels", timeout=timeout)
        return {
            str(item["id"]): str(item.get("state", ""))
            for item in channels or []
            if isinstance(item, dict) and "id" in item
        }

    async def ping(self, timeout: float = 2.0) -> bool:
        """The node answers *and* still has our application. A WebSocket can stay open with no
        app behind it: after a node hangs and resumes, the old session's late teardown was seen
        to unregister the app the new session had just registered, and no event came again.
        Then the socket is closed, so the keeper connects (and registers) anew."""
        if not self.up:
            return False
        try:
            await self._request("GET", "applications", self._app, timeout=timeout)
        except AriRefused as exc:
            if exc.status == 404 and self._ws is not None:
                log.warning("ari.app_lost", node=self.name, app=self._app)
                await self._ws.close()
            return False
        except NodeError:
            return False
        return True
