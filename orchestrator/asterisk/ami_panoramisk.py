"""panoramisk as the AMI driver uses it. The only module that reaches past panoramisk's documented
API, each time for a reason (tests/unit/test_ami_panoramisk.py holds the installed version to
what is relied on here):

- `protocol_factory`, a Manager setting: `EventStreamProtocol` takes unsolicited events off the
  wire as plain dicts, and so works with AMIProtocol's internals (`queue`, `responses`,
  `factory`, `encoding`, `handle_message`).
- `forgetable_actions`, a Manager setting: panoramisk sends again, after a reconnection, the
  actions that had no reply. An Originate may already have been dialed, and a Hangup may be
  stale: neither is ever sent again.
- `reconnect_timeout` and `Manager.connect`: panoramisk's own reconnect loop is switched off (it
  was seen to churn connections without ever logging in again after a long outage; the
  LinkKeeper reconnects, with a fresh Manager each time), and a retired Manager's `connect` is
  made a no-op, so that no stray timer of it can bring a second event stream back.
- `Manager.protocol`: whether a Manager has a connection to send an action on.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from orchestrator.domain.dialing import NodeNotConnected

BANNER = "Asterisk Call Manager/"
NEVER_SENT_AGAIN = ("ping", "login", "originate", "hangup")
PING_EVERY_S = 5
"""panoramisk's own keep-alive Ping (its reply is not read): traffic on a quiet link."""

PlainEventHandler = Callable[[Manager, dict[str, str]], None]


def parse_event_fields(block: str) -> dict[str, str]:
    """The `Key: Value` lines of one AMI message as a plain dict. A key seen twice keeps its
    first value (only ChanVariable-style headers repeat, and nothing here reads them)."""
    fields: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in fields:
            fields[key] = value
    return fields


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
        self._decoder: codecs.IncrementalDecoder | None = None

    def data_received(self, data: bytes) -> None:
        if self._decoder is None:
            # Incremental: a character whose bytes TCP split across two reads stays whole.
            self._decoder = codecs.getincrementaldecoder(getattr(self, "encoding", "utf8"))("ignore")
        text = self._decoder.decode(data)
        if self.queue:
            text = self.queue.popleft() + text
        if self.version is None and text.startswith(BANNER) and "\r\n" in text:
            self.version = text.partition("\r\n")[0].partition("/")[2].strip()
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


def new_manager(
    *,
    host: str,
    port: int,
    username: str,
    secret: str,
    on_login: Callable[[Manager], None],
    on_disconnect: Callable[[Manager, Exception | None], None],
    on_event: PlainEventHandler,
) -> Manager:
    """A Manager for one connection, not yet connected."""
    return Manager(
        loop=asyncio.get_running_loop(),
        host=host,
        port=port,
        username=username,
        secret=secret,
        ping_delay=PING_EVERY_S,
        ping_interval=PING_EVERY_S,
        reconnect_timeout=10**9,  # reconnecting is the LinkKeeper's job
        forgetable_actions=NEVER_SENT_AGAIN,
        on_login=on_login,
        on_disconnect=on_disconnect,
        protocol_factory=lambda: EventStreamProtocol(on_event),
    )


def retire(manager: Manager) -> None:
    """Closed for good: nothing of it (a pending reconnection timer) can connect it again."""
    manager.connect = lambda *args, **kwargs: None
    manager.close()


def send(manager: Manager, action: dict[str, Any], *, as_list: bool | None = None) -> asyncio.Future[Any]:
    """The reply to come (a list of messages for an action with several)."""
    if manager.protocol is None:
        raise NodeNotConnected("the AMI session has no connection")
    future: asyncio.Future[Any] = manager.send_action(action, as_list=as_list)
    return future


def banner_version(manager: Manager) -> str | None:
    """The AMI protocol's version from the login banner (e.g. 11.0.0), not Asterisk's."""
    version = getattr(manager.protocol, "version", None)
    return str(version) if version else None
