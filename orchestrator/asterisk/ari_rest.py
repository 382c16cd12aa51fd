"""ARI over REST (aiohttp): the values sent checked, the replies read, every error the port's.
`AriRest` makes the calls; the rest is pure."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from orchestrator.asterisk.ari_events import EVENT_TYPES
from orchestrator.asterisk.errors import ErrorTable, map_errors
from orchestrator.domain.dialing import (
    OUTBOUND_CONTEXT,
    NodeError,
    NodeLinkFailed,
    NodeRefused,
    NodeTimeout,
    OriginateRequest,
)

REST_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
HEARTBEAT_S = 5.0
"""WebSocket pings: a node that hangs with its TCP session open is noticed within seconds."""


class AriError(NodeError):
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


async def refusal(response: aiohttp.ClientResponse) -> AriRefused:
    """ARI's own words for a refusal ({"error": ...} or {"message": ...}), else the raw body."""
    body = await response.text()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        body = str(data.get("error") or data.get("message") or body)
    return AriRefused(response.status, body.strip()[:200])


class AriRest:
    """REST calls to one node's ARI (and its event WebSocket's opening), on an HTTP session
    held while `opened()` is: for as long as the node's LinkKeeper runs."""

    def __init__(self, node: str, url: str, username: str, password: str) -> None:
        self._node = node
        self.base = base_url(url)
        self._auth = basic_auth(username, password)
        self.session: aiohttp.ClientSession | None = None

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        self.session = aiohttp.ClientSession(
            headers={"Authorization": self._auth}, timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_S)
        )
        try:
            yield
        finally:
            session, self.session = self.session, None
            await session.close()

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            raise AriError(f"node {self._node} is not connected")
        return self.session

    async def request(
        self,
        method: str,
        *segments: object,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = REST_TIMEOUT_S,
    ) -> Any:
        """One REST call; the decoded JSON reply (None when empty). AriRefused on a non-2xx."""
        session = self._session()
        url = rest_url(self.base, *segments)
        with map_errors(ARI_ERRORS, f"{method} {url.path} on {self._node}", within_s=timeout):
            async with session.request(
                method,
                url,
                params=dict(params) if params else None,
                json=json_body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                if response.status >= 300:
                    raise await refusal(response)
                body = await response.read()
        try:
            return json.loads(body) if body.strip() else None
        except ValueError as exc:  # not Asterisk answering (a proxy's page, say)
            raise AriError(f"{self._node}: a reply that is not JSON from {method} {url}") from exc

    async def create_channel(self, channel_id: str, request: OriginateRequest) -> str | None:
        """`POST /channels/{id}` into the outbound dialplan: None when the node made the
        channel, else its refusal (e.g. "Allocation failed": an unknown endpoint)."""
        query, body = originate_params(request)
        session = self._session()
        with map_errors(ARI_ERRORS, f"Originate on {self._node}", within_s=REST_TIMEOUT_S):
            async with session.post(
                rest_url(self.base, "channels", channel_id),
                params=query,
                json=body,
                timeout=aiohttp.ClientTimeout(total=REST_TIMEOUT_S),
            ) as response:
                if response.status >= 300:
                    return str(await refusal(response))
        return None

    async def events(self, app: str) -> aiohttp.ClientWebSocketResponse:
        """The event WebSocket of `app`, subscribed to every channel of the node."""
        url = rest_url(self.base, "events").with_query(app=app, subscribeAll="true")
        with map_errors(ARI_ERRORS, f"events WebSocket of {self._node}", within_s=CONNECT_TIMEOUT_S):
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await self._session().ws_connect(url, heartbeat=HEARTBEAT_S)
