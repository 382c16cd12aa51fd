"""EventStreamProtocol: unsolicited AMI events reach the handler as plain dicts, with the same
fields panoramisk's own parser reads; responses and an action's events still resolve the action."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from panoramisk.message import Message

from orchestrator.asterisk.ami_panoramisk import EventStreamProtocol, parse_event_fields

NEWSTATE = (
    "Event: Newstate\r\nPrivilege: call,all\r\nChannel: PJSIP/demo-00000001\r\nChannelState: 6\r\n"
    "ChannelStateDesc: Up\r\nCallerIDName: <unknown>\r\nConnectedLineNum: +14155550123\r\n"
    "Language: en\r\nContext: sespcl-outbound\r\nExten: s\r\nPriority: 1\r\n"
    "Uniqueid: 0a1b2c3d-0000-4000-8000-000000000001\r\nLinkedid: 0a1b2c3d-0000-4000-8000-000000000001\r\n\r\n"
)
USER_EVENT = (
    "Event: UserEvent\r\nPrivilege: user,all\r\nUniqueid: u-2\r\nUserEvent: SespclAnswered\r\n"
    "CallId: c-2\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n"
)
ORIGINATE_RESPONSE = (
    "Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: attempt-1\r\nResponse: Success\r\n"
    "Channel: PJSIP/demo-00000001\r\nReason: 4\r\nUniqueid: attempt-1\r\n\r\n"
)


class _Factory:
    def __init__(self) -> None:
        self.dispatched: list[Any] = []

    def dispatch(self, message: Any) -> None:
        self.dispatched.append(message)

    def connection_lost(self, exc: Any) -> None:
        pass


def _protocol() -> tuple[EventStreamProtocol, list[dict[str, str]], _Factory]:
    received: list[dict[str, str]] = []
    factory = _Factory()
    protocol = EventStreamProtocol(
        lambda manager, fields: received.append(fields) if manager is factory else None
    )

    class _Transport:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    protocol.connection_made(_Transport())
    # What panoramisk's Manager sets once connected.
    protocol.factory, protocol.queue, protocol.encoding = factory, deque(), "utf8"
    return protocol, received, factory


def test_fields_match_panoramisk_for_single_valued_headers() -> None:
    block = NEWSTATE.strip()
    reference = Message.from_line(block)
    assert parse_event_fields(block) == {str(k): str(v) for k, v in reference.items() if k != "content"}


def test_a_repeated_header_keeps_its_first_value() -> None:
    assert parse_event_fields(USER_EVENT.strip())["ChanVariable"] == "A=1"


async def test_events_split_across_reads_arrive_whole_and_in_order() -> None:
    protocol, received, factory = _protocol()
    protocol.data_received(b"Asterisk Call Manager/11.0.0\r\n")  # the banner comes first, alone
    stream = (NEWSTATE + USER_EVENT).encode()
    for start in range(0, len(stream), 7):  # cut mid-line and mid-terminator
        protocol.data_received(stream[start : start + 7])
    assert [f["Event"] for f in received] == ["Newstate", "UserEvent"]
    assert received[0]["Uniqueid"] == "0a1b2c3d-0000-4000-8000-000000000001"
    assert received[0]["ChannelStateDesc"] == "Up" and received[1]["CallId"] == "c-2"
    assert protocol.version == "11.0.0"
    assert factory.dispatched == []  # nothing went through panoramisk's pattern dispatch


async def test_an_actions_own_event_resolves_the_action_not_the_handler() -> None:
    protocol, received, _ = _protocol()
    future = protocol.send({"Action": "Originate", "ActionID": "attempt-1", "Async": "true"}, as_list=None)
    protocol.data_received(
        b"Response: Success\r\nActionID: attempt-1\r\nMessage: Originate successfully queued\r\n\r\n"
    )
    protocol.data_received((ORIGINATE_RESPONSE + NEWSTATE).encode())
    result = await asyncio.wait_for(future, 1)
    messages = result if isinstance(result, list) else [result]
    assert messages[-1]["Event"] == "OriginateResponse" and messages[-1]["Reason"] == "4"
    assert [f["Event"] for f in received] == ["Newstate"]


async def test_an_event_for_an_action_no_longer_pending_goes_to_the_handler() -> None:
    protocol, received, _ = _protocol()
    protocol.data_received(ORIGINATE_RESPONSE.encode())
    assert [f["Event"] for f in received] == ["OriginateResponse"]
