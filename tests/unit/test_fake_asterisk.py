"""The simulated node's AMI (bench/fake_asterisk) against the recordings of this stack's Asterisk
22 (tests/fixtures/ami/*.txt): the same bytes for the same call, the same typed events through
the project's own driver, the same final status through the dispatcher; its capacity refuses as
a node that makes no channel; CoreShowChannels lists what is live; each user has its rights."""

from __future__ import annotations

import asyncio

import pytest

from bench.fake_asterisk.calls import Behaviour
from orchestrator.asterisk.ami import AmiNode, originate_action
from orchestrator.asterisk.ami_events import ami_event
from orchestrator.asterisk.ami_panoramisk import parse_event_fields
from orchestrator.domain.dialing import OriginateOutcome
from orchestrator.domain.events import ChannelEvent
from orchestrator.loop import asyncio_run
from tests.unit.factories import make_claim, originate_request
from tests.unit.fake_node_recordings import (
    ADMIN_SECRET,
    FRAME_END,
    SECRET,
    SHORT_RING_MS,
    ami_recording,
    dispatched,
    fake_node,
    frames,
    full_node_refuses,
)
from tests.unit.fakes import eventually, make_dispatcher
from tests.unit.test_replay import EXPECTED, REFUSED

DIALED = ["answered", "busy", "no_answer", "unavailable"]
VOLATILE = {"Uptime", "LastReload"}
"""FullyBooted's: how long the node has been up."""


def _behaviour(outcome: str, **fields: float) -> Behaviour:
    """The recordings' far ends answer at once; a node over capacity is the one that refuses."""
    return Behaviour(capacity=0 if outcome == "no_such_trunk" else 10, **fields)


class RawAmi:
    """A client that writes actions as the recorder did and keeps every byte the node sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = b""

    @classmethod
    async def open(cls, port: int, user: str = "sespcl", secret: str = SECRET) -> RawAmi:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.send({"Action": "Login", "Username": user, "Secret": secret})
        return client

    def send(self, action: dict[str, object]) -> None:
        lines = [(k, item) for k, v in action.items() for item in (v if isinstance(v, list) else [v])]
        self.writer.write("".join(f"{k}: {v}\r\n" for k, v in lines).encode() + b"\r\n")

    async def until(self, marker: bytes) -> bytes:
        """Everything received until a whole message containing `marker` is in."""
        async with asyncio.timeout(5):
            while marker not in self.received or not self.received.split(marker, 1)[1].count(FRAME_END):
                self.received += await self.reader.read(65536)
        return self.received

    def close(self) -> None:
        self.writer.close()


def _normalised(data: bytes) -> list[list[tuple[str, str]]]:
    return [[(k, "" if k in VOLATILE else v) for k, v in message] for message in frames(data)]


@pytest.mark.parametrize("outcome", [*DIALED, "no_such_trunk"])
async def test_the_fake_says_what_asterisk_said(outcome: str) -> None:
    """Byte for byte, but for the node's uptime: the banner, the login, every frame of the call."""
    recorded, data = ami_recording(outcome)
    async with fake_node(_behaviour(outcome), first_channel=recorded.sequence) as (_, port, _):
        client = await RawAmi.open(port)
        client.send(originate_action(recorded.request(SHORT_RING_MS)) | {"ActionID": "record-1"})
        last = b"Event: OriginateResponse" if outcome == "no_such_trunk" else b"Event: Hangup"
        received = await client.until(last)
        client.close()
    assert _normalised(received) == _normalised(data)


def _recorded_events(data: bytes) -> list[ChannelEvent]:
    """The recording through the driver's own parsing and mapping."""
    fields = (parse_event_fields(block.decode().strip()) for block in data.split(FRAME_END))
    return [event for f in fields if (event := ami_event(f, at=_AT)) is not None]


_AT = make_claim("n1").claimed_at


def _said(events: list[ChannelEvent]) -> list[tuple[object, ...]]:
    """What an event says, but when it was received."""
    return [(type(e), e.attempt_id, e.state, e.recorded) for e in events]


async def _connected(port: int, events: list[ChannelEvent]) -> AmiNode:
    node = AmiNode(
        "n1", host="127.0.0.1", port=port, username="sespcl", secret=SECRET,
        on_event=lambda _, event: events.append(event),
    )  # fmt: skip
    node.connect()
    assert await node.wait_up(5)
    return node


@pytest.mark.parametrize("outcome", [*DIALED, "no_such_trunk"])
async def test_the_driver_reads_the_fake_as_it_read_asterisk(outcome: str) -> None:
    recorded, data = ami_recording(outcome)
    events: list[ChannelEvent] = []
    async with fake_node(_behaviour(outcome), first_channel=recorded.sequence) as (_, port, _):
        node = await _connected(port, events)
        reply = await node.originate(recorded.request(SHORT_RING_MS), wait_s=5)
        expected = _recorded_events(data)
        await eventually(lambda: len(events) >= len(expected))
        await node.aclose()
    assert _said(events) == _said(expected)
    replies = {"answered": OriginateOutcome(True, 4), "no_answer": OriginateOutcome(False, 3)}
    assert reply == replies.get(outcome, OriginateOutcome(False, 0))


@pytest.mark.parametrize("outcome", [*DIALED, "no_such_trunk"])
async def test_the_dispatcher_ends_each_call_as_on_asterisk(outcome: str) -> None:
    recorded, _ = ami_recording(outcome)
    dispatcher = make_dispatcher()
    async with fake_node(_behaviour(outcome)) as (_, port, _):
        node = AmiNode(
            "n1", host="127.0.0.1", port=port, username="sespcl", secret=SECRET,
            on_event=dispatcher.on_node_event,
        )  # fmt: skip
        ending = await dispatched(dispatcher, node, recorded)
    assert (ending or (REFUSED, None)) == EXPECTED[outcome]


async def test_a_full_node_refuses_and_lists_its_live_channels() -> None:
    events: list[ChannelEvent] = []
    async with fake_node(Behaviour(capacity=1, call_s=30)) as (fake, port, _):
        node = AmiNode(
            "n1", host="127.0.0.1", port=port, username="sespcl", secret=SECRET,
            on_event=lambda _, event: events.append(event),
        )  # fmt: skip
        await full_node_refuses(node, events, OriginateOutcome(False, 0))
    assert (fake.dialed, fake.refusals) == (1, 1)


async def test_each_user_has_the_rights_of_manager_conf() -> None:
    async with fake_node(Behaviour(call_s=30)) as (fake, port, _):
        admin = await RawAmi.open(port, "sespcl-admin", ADMIN_SECRET)
        admin.send(originate_action(originate_request(attempt_id="by-admin")) | {"ActionID": "o1"})
        admin.send({"Action": "Command", "Command": "core show uptime", "ActionID": "c1"})
        said = await admin.until(b"ActionID: c1")
        dispatcher = await RawAmi.open(port)
        dispatcher.send({"Action": "Command", "Command": "core show uptime", "ActionID": "c2"})
        refused = await dispatcher.until(b"ActionID: c2")
        wrong = await RawAmi.open(port, "sespcl", "not-the-secret")
        failed = await wrong.until(b"Authentication failed")
        for client in (admin, dispatcher, wrong):
            client.close()
    assert b"ActionID: o1\r\nMessage: Permission denied" in said and not fake.channels
    assert b"Output: System uptime:" in said
    assert b"Response: Error\r\nActionID: c2\r\nMessage: Permission denied" in refused
    assert b"FullyBooted" not in failed


def test_the_fake_serves_on_uvloop_as_the_bench_runs_it() -> None:
    """uvloop's transports are no asyncio.Transport: the fake must not rely on it."""

    async def listed() -> bytes:
        async with fake_node(Behaviour(call_s=30)) as (_, port, _):
            client = await RawAmi.open(port)
            client.send(originate_action(originate_request(attempt_id="on-uvloop")) | {"ActionID": "o1"})
            client.send({"Action": "CoreShowChannels", "ActionID": "l1"})
            said = await client.until(b"Event: CoreShowChannelsComplete")
            client.close()
            return said

    said = asyncio_run(listed())
    assert b"Uniqueid: on-uvloop" in said and b"ListItems: 1" in said
