"""The simulated node (bench/fake_asterisk) served on 127.0.0.1, and what each recording of
tests/fixtures/ says about the call it recorded: the ids, numbers and channel names to dial the
fake with, so that what the fake says can be held to what Asterisk 22 said, field for field."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.fake_asterisk.ami_server import AmiUser, serve_ami
from bench.fake_asterisk.ari_server import serve_ari
from bench.fake_asterisk.calls import Behaviour
from bench.fake_asterisk.node import FakeNode
from orchestrator.asterisk.ami import AmiNode
from orchestrator.asterisk.ari import AriNode
from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import OriginateOutcome, OriginateRequest
from orchestrator.domain.events import ChannelEvent, ChannelHungUp
from orchestrator.services.dispatch import Dispatcher
from tests.fixtures.record_traffic import OUTCOMES, RING_TIMEOUT_MS
from tests.unit.factories import make_claim, node_row, originate_request, state_of
from tests.unit.fakes import drained_transitions, eventually

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECRET = "dispatcher-secret"
ADMIN_SECRET = "admin-secret"
ARI_PASSWORD = "ari-password"
CALLER = "+14155550100"
AUDIO = "/var/lib/sespcl/audio/0f9d7dd6baa39036a5148558c244c65f2ada5b0e9442a9da987dd7a7ee4fbf3d"
SHORT_RING_MS = 300
"""The no-answer call rings this long here (the recording's 5 s would only slow the tests)."""
FRAME_END = b"\r\n\r\n"
NEWCHANNEL_SEQUENCE = rb"Event: Newchannel\r\n(?:[^\r]*\r\n)*?Channel: PJSIP/[^-]+-([0-9a-f]{8})"


@dataclass(frozen=True)
class Recorded:
    """One recorded call: how it was dialed, and the node's channel sequence number."""

    outcome: str
    attempt_id: str
    call_id: str
    trunk: str
    number: str
    sequence: int

    def request(self, ring_ms: int = RING_TIMEOUT_MS) -> OriginateRequest:
        """The recorder's request (tests/fixtures/record_traffic.py), with the recorded ids."""
        return OriginateRequest(
            attempt_id=self.attempt_id,
            to=self.number,
            trunk=self.trunk,
            caller_id=CALLER,
            audio_path=AUDIO,
            call_id=self.call_id,
            timeout_ms=ring_ms if self.outcome == "no_answer" else RING_TIMEOUT_MS,
            max_call_s=30,
        )


def _found(pattern: bytes, data: bytes, default: str = "") -> str:
    match = re.search(pattern, data)
    return match.group(1).decode() if match else default


def ami_recording(outcome: str) -> tuple[Recorded, bytes]:
    data = (FIXTURES / "ami" / f"{outcome}.txt").read_bytes()
    trunk, number = OUTCOMES[outcome]
    recorded = Recorded(
        outcome,
        attempt_id=_found(rb"Event: OriginateResponse\r\n(?:[^\r]*\r\n)*?Uniqueid: ([0-9a-f-]{36})", data),
        call_id=_found(rb"CallId: ([0-9a-f-]{36})", data),
        trunk=trunk,
        number=number,
        sequence=int(_found(NEWCHANNEL_SEQUENCE, data, "0"), 16),
    )
    return recorded, data


def ari_recording(outcome: str) -> tuple[Recorded, dict[str, Any], list[dict[str, Any]]]:
    """The call, the POST's reply, and the WebSocket's messages."""
    lines = [json.loads(line) for line in (FIXTURES / "ari" / f"{outcome}.jsonl").read_text().splitlines()]
    post = next(line for line in lines if line.get("rest") == "POST channels")
    messages = [line["ws"] for line in lines if "ws" in line]
    trunk, number = OUTCOMES[outcome]
    body = json.loads(post["body"]) if post["status"] == 200 else {}
    answered = [m["userevent"]["CallId"] for m in messages if m.get("type") == "ChannelUserevent"]
    recorded = Recorded(
        outcome,
        attempt_id=str(body.get("id") or uuid.uuid4()),  # a refused POST made no channel
        call_id=answered[0] if answered else "",
        trunk=trunk,
        number=number,
        sequence=int(str(body.get("name", "x-0")).rsplit("-", 1)[1], 16),
    )
    return recorded, post, messages


def frames(data: bytes) -> list[list[tuple[str, str]]]:
    """Each message of an AMI byte stream as its (key, value) pairs; the banner alone first."""
    banner, _, rest = data.partition(b"\r\n")
    blocks = [block for block in rest.split(FRAME_END) if block.strip()]
    parsed = [[(banner.decode(), "")]]
    for block in blocks:
        pairs = [line.partition(": ") for line in block.decode().split("\r\n")]
        parsed.append([(key, value) for key, _, value in pairs])
    return parsed


@contextlib.asynccontextmanager
async def fake_node(
    behaviour: Behaviour, *, name: str = "n1", first_channel: int = 0
) -> AsyncIterator[tuple[FakeNode, int, int]]:
    """A simulated node with its AMI and ARI on 127.0.0.1: (node, AMI port, ARI port)."""
    node = FakeNode(name, behaviour, first_channel=first_channel)
    users = {"sespcl": AmiUser.dispatcher(SECRET), "sespcl-admin": AmiUser.admin(ADMIN_SECRET)}
    ami = await serve_ami(node, "127.0.0.1", 0, users)
    runner: web.AppRunner = await serve_ari(node, "127.0.0.1", 0, "sespcl", ARI_PASSWORD)
    try:
        yield node, int(ami.sockets[0].getsockname()[1]), int(runner.addresses[0][1])
    finally:
        ami.close()
        await runner.cleanup()


async def dispatched(
    dispatcher: Dispatcher, node: AmiNode | AriNode, recorded: Recorded
) -> tuple[CallStatus, int] | None:
    """The recorded call sent by the dispatcher's Sender over `node` (its driver, connected to
    a fake), as after a claim: its final (status, cause), or None when it went back to the
    queue unsent (the node made no channel)."""
    dispatcher.nodes.add(node_row("n1", driver=node.driver), node)
    node.connect()
    assert await node.wait_up(5)
    claim = dataclasses.replace(make_claim("n1"), trunk=recorded.trunk, to=recorded.number, ring_timeout_s=1)
    now = dispatcher.clock.monotonic()
    dispatcher.live.sent(state_of(claim), claim.ring_timeout_s, now, trunk=claim.trunk)
    await dispatcher.sender.originate(claim)
    await node.aclose()
    finals = [t for t in drained_transitions(dispatcher) if t.status.is_final]
    if not finals and dispatcher.unsent:
        return None
    assert len(finals) == 1 and finals[0].ending is not None, finals
    return finals[0].ending.status, finals[0].ending.cause


async def full_node_refuses(
    node: AmiNode | AriNode, events: list[ChannelEvent], refused: OriginateOutcome
) -> None:
    """On a node of one channel, holding a long call: a second call is `refused`, the channel
    list shows the first one up, and once hung up, nothing; no event names the refused call."""
    node.connect()
    assert await node.wait_up(5)
    first, second = originate_request(attempt_id="a-first"), originate_request(attempt_id="a-second")
    assert await node.originate(first, wait_s=5) == OriginateOutcome(True, 4)
    assert await node.originate(second, wait_s=5) == refused
    assert await node.channel_ids() == {"a-first": "Up"}
    await node.hangup("a-first", cause=16)
    await eventually(lambda: any(isinstance(e, ChannelHungUp) for e in events))
    assert await node.channel_ids() == {}
    await node.aclose()
    assert {e.attempt_id for e in events} == {"a-first"}
    assert [e.cause for e in events if isinstance(e, ChannelHungUp)] == [16]
