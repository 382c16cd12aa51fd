"""What ami_panoramisk.py relies on in panoramisk beyond its documented API, held to the installed
version: a panoramisk upgrade that changes any of it fails here, not on a live node."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from panoramisk.ami_protocol import AMIProtocol

from orchestrator.asterisk import ami_panoramisk
from orchestrator.asterisk.ami_panoramisk import EventStreamProtocol
from orchestrator.domain.dialing import NodeNotConnected
from tests.unit.fakes import connect_on


def _manager(**callbacks: Any) -> Any:
    return ami_panoramisk.new_manager(
        host="127.0.0.1",
        port=9,
        username="u",
        secret="s",
        on_login=callbacks.get("on_login", lambda m: None),
        on_disconnect=callbacks.get("on_disconnect", lambda m, exc: None),
        on_event=callbacks.get("on_event", lambda m, fields: None),
    )


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def _connected(manager: Any) -> EventStreamProtocol:
    protocol = connect_on(manager, _Transport())
    assert isinstance(protocol, EventStreamProtocol) and isinstance(protocol, AMIProtocol)
    return protocol


async def test_the_protocol_hook_and_the_internals_the_event_stream_reads() -> None:
    events: list[dict[str, str]] = []
    manager: Any = None
    manager = _manager(on_event=lambda m, fields: events.append(fields) if m is manager else None)
    protocol = _connected(manager)
    # Manager.connection_made sets what EventStreamProtocol reads.
    assert protocol.factory is manager and isinstance(protocol.queue, deque)
    assert protocol.responses is manager.responses and protocol.encoding == "utf8"
    protocol.data_received(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n")
    protocol.data_received(b"ActionID: x\r\n\r\nEvent: Newstate\r\nUniqueid: a\r\n\r\n")
    assert events == [{"Event": "Newstate", "Uniqueid": "a"}]
    assert ami_panoramisk.banner_version(manager) == "11.0.0"


async def test_originate_and_hangup_are_never_sent_again_after_a_reconnection() -> None:
    manager = _manager()
    protocol = _connected(manager)
    for action in ("Originate", "Hangup", "Ping", "CoreSettings"):
        ami_panoramisk.send(manager, {"Action": action})
    protocol.close()  # what a lost connection does to the actions still waiting
    assert [a["Action"] for a in manager.awaiting_actions] == ["CoreSettings"]
    assert {"originate", "hangup"} <= set(manager.forgetable_actions)


async def test_panoramisk_reconnects_never_and_a_retired_manager_cannot() -> None:
    manager = _manager()
    assert manager.reconnect_timeout >= 10**9, "reconnecting is the LinkKeeper's"
    protocol = _connected(manager)
    ami_panoramisk.retire(manager)
    assert protocol.closed and protocol.transport.closed
    assert manager.connect() is None, "a stray timer of a retired Manager connects nothing"


async def test_a_manager_without_a_connection_sends_nothing() -> None:
    with pytest.raises(NodeNotConnected):
        ami_panoramisk.send(_manager(), {"Action": "Ping"})


async def test_a_character_split_across_reads_arrives_whole() -> None:
    events: list[dict[str, str]] = []
    protocol = _connected(_manager(on_event=lambda m, fields: events.append(fields)))
    stream = "Event: Newchannel\r\nUniqueid: a\r\nCallerIDName: Zoë\r\n\r\n".encode()
    cut = stream.index("ë".encode()) + 1  # between the character's two bytes
    protocol.data_received(stream[:cut])
    protocol.data_received(stream[cut:])
    assert events[0]["CallerIDName"] == "Zoë"
