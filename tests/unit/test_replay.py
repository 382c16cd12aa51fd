"""Recorded traffic of one call of each outcome, from this stack's Asterisk 22 (recorded by
tests/fixtures/record_traffic.py), replayed through each driver, as panoramisk's own `testing`
does: the AMI session's raw bytes fed to the driver's protocol in whatever pieces TCP might
deliver them, the ARI WebSocket's messages and the POST's reply to the ARI driver. Each
recording becomes typed events, and through the dispatcher's Sender and `AttemptState` a final
status; the AMI and the ARI recording of one outcome must end alike."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asterisk.ami import AmiLink, AmiNode, originate_action, originate_outcome
from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.ari_events import ari_event
from orchestrator.asterisk.ari_link import AriLink
from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import OriginateOutcome
from orchestrator.domain.events import ChannelEvent
from orchestrator.domain.ports import Unsent
from orchestrator.services.dispatch import Dispatcher
from tests.unit.factories import make_claim, node_row, originate_request, state_of
from tests.unit.fakes import QuietSocket, connect_on, drained_transitions, hold_link, make_dispatcher

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFUSED = "refused"
EXPECTED: dict[str, tuple[CallStatus | str, int | None]] = {
    "answered": (CallStatus.COMPLETED, 16),
    "busy": (CallStatus.BUSY, 17),
    "no_answer": (CallStatus.NO_ANSWER, 19),
    "unavailable": (CallStatus.FAILED, 34),
    "no_such_trunk": (REFUSED, None),  # no channel made: nothing dialed, queued again
}
"""Each outcome's ending, (status, Q.850 cause), as both drivers must reach it."""
OUTCOMES = sorted(EXPECTED)


def _recording(driver: str, outcome: str) -> Path:
    path = FIXTURES / driver / f"{outcome}.{'txt' if driver == 'ami' else 'jsonl'}"
    if not path.exists():
        pytest.skip(f"no recording {path.relative_to(FIXTURES.parent.parent)}: record it with {RECORD}")
    return path


RECORD = "tests/fixtures/record_traffic.py against a running stack (see its docstring)"


# ---- AMI: the session's bytes, in every chunking -------------------------------------------


def _ami_bytes(outcome: str) -> tuple[str, bytes]:
    """The attempt id and the session's bytes, its Originate's ActionID made the attempt id (the
    recorder used its own; the driver sends the attempt id)."""
    data = _recording("ami", outcome).read_bytes()
    # The OriginateResponse names the channel, made or not; an Originate refused outright has none.
    found = re.search(rb"Event: OriginateResponse\r\n(?:[^\r]*\r\n)*?Uniqueid: ([0-9a-f-]{36})", data)
    attempt = found.group(1).decode() if found is not None else str(uuid.uuid4())
    return attempt, data.replace(b"ActionID: record-1\r\n", f"ActionID: {attempt}\r\n".encode())


def _chunkings(data: bytes) -> Iterator[list[bytes]]:
    """Whole; a byte at a time; cut around every frame's end; and at random places."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    ends = [m.end() for m in re.finditer(rb"\r\n\r\n", data)]
    for shift in (-3, -2, -1, 1):
        cuts = sorted({min(max(end + shift, 1), len(data)) for end in ends})
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)]) if a < b]
    for seed in range(20):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, min(60, len(data) - 1))))
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


class ReplayTransport:
    """Where the driver's Manager writes. The Originate is answered by the recording, fed to the
    protocol piece by piece before the driver reads the reply: every event, the Hangup that
    trails a failed OriginateResponse included, arrives within the Sender's wait for it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        if b"Action: Originate" in data:
            for chunk in self._chunks:
                self.protocol.data_received(chunk)

    def close(self) -> None:
        pass


def _ami_node(dispatcher: Dispatcher | None, chunks: list[bytes], events: list[ChannelEvent]) -> AmiNode:
    def on_event(node: str, event: ChannelEvent) -> None:
        events.append(event)
        if dispatcher is not None:
            dispatcher.on_node_event(node, event)

    node = AmiNode("n1", host="127.0.0.1", port=5038, username="u", secret="s", on_event=on_event)
    link = AmiLink(node.name, node._login, node._on_fields)
    transport = ReplayTransport(chunks)
    transport.protocol = connect_on(link._manager, transport)
    hold_link(node._keeper, link)
    return node


async def _ami_parse(outcome: str, chunks: list[bytes]) -> tuple[list[ChannelEvent], OriginateOutcome]:
    """Through the driver's parsing layer only: its typed events, and its Originate's reply."""
    attempt, _ = _ami_bytes(outcome)
    events: list[ChannelEvent] = []
    node = _ami_node(None, chunks, events)
    link = node._keeper.live()
    reply = await link.send(originate_action(originate_request(attempt_id=attempt)), 1.0)
    return events, originate_outcome(reply, node.name)


def _same(events: list[ChannelEvent]) -> list[tuple[Any, ...]]:
    """What an event says, but when it was received."""
    return [(type(e), {k: v for k, v in vars(e).items() if k != "at"}) for e in events]


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_ami_bytes_in_any_chunking_give_the_same_events(outcome: str) -> None:
    attempt, data = _ami_bytes(outcome)
    whole, reply = await _ami_parse(outcome, [data])
    assert whole or outcome == "no_such_trunk"
    for chunks in _chunkings(data):
        events, chunked_reply = await _ami_parse(outcome, chunks)
        assert _same(events) == _same(whole) and chunked_reply == reply
    assert {event.attempt_id for event in whole} <= {attempt}


# ---- ARI: the WebSocket's messages and the POST's reply -------------------------------------


def _ari_lines(outcome: str) -> tuple[str, dict[str, Any], list[str]]:
    """The attempt id, the POST's reply, and the WebSocket's messages as they came (text)."""
    lines = [json.loads(line) for line in _recording("ari", outcome).read_text().splitlines() if line]
    post = next(line for line in lines if line.get("rest") == "POST channels")
    messages = [json.dumps(line["ws"]) for line in lines if "ws" in line]
    ids = {
        event.get("channel", event.get("peer", {})).get("id") for event in (json.loads(m) for m in messages)
    }
    attempt = ids.pop() if ids else str(uuid.uuid4())
    return attempt, post, messages


class ReplayReply:
    def __init__(self, post: dict[str, Any], after: Callable[[], None]) -> None:
        self.status = int(post["status"])
        self._body = str(post["body"])
        self._after = after

    async def text(self) -> str:
        return self._body

    async def __aenter__(self) -> ReplayReply:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._after()  # the WebSocket's messages, once the reply is read


class ReplayHttp:
    """The node's HTTP session: the POST answered as recorded; nothing else is asked."""

    def __init__(self, post: dict[str, Any], after: Callable[[], None]) -> None:
        self._post = post
        self._after = after

    def post(self, *args: Any, **kwargs: Any) -> ReplayReply:
        return ReplayReply(self._post, self._after)


def _ari_node(dispatcher: Dispatcher, outcome: str) -> tuple[str, AriNode]:
    attempt, post, messages = _ari_lines(outcome)
    node = AriNode(
        "n1", url="http://127.0.0.1:9/ari", username="u", password="p", on_event=dispatcher.on_node_event
    )
    link = AriLink(node.name, node._app, QuietSocket(), node._rest, node._on_message)

    def feed() -> None:
        for message in messages:
            link._receive(message)  # the text, as the WebSocket delivers it

    node._rest.session = ReplayHttp(post, feed)  # type: ignore[assignment]
    hold_link(node._keeper, link)
    return attempt, node


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_ari_messages_become_events_of_the_attempt_only(outcome: str) -> None:
    attempt, _, messages = _ari_lines(outcome)
    events = [e for m in messages if (e := ari_event(json.loads(m), datetime.now(UTC))) is not None]
    assert {event.attempt_id for event in events} <= {attempt}
    assert events or outcome == "no_such_trunk"


# ---- through the dispatcher: the final status -----------------------------------------------


def _driver_event(recorded_type: str) -> str:
    """A node's event recorded as `ami.X` or `ari.X`: X; the dispatcher's own: ""."""
    driver, _, name = recorded_type.partition(".")
    return name if driver in ("ami", "ari") else ""


@dataclass(frozen=True)
class Verdict:
    ending: tuple[CallStatus | str, int | None]
    recorded: list[str]
    """The node's events recorded for the call, without the driver's prefix."""
    kinds: list[str]


async def _dial(dispatcher: Dispatcher, attempt: str) -> Verdict:
    """The attempt's Originate sent by the dispatcher's Sender, as after a claim."""
    claim = make_claim("n1")
    claim = type(claim)(**{**vars(claim), "attempt_id": uuid.UUID(attempt)})
    dispatcher.live.sent(
        state_of(claim), claim.ring_timeout_s, dispatcher.clock.monotonic(), trunk="carrier-a"
    )
    await dispatcher.sender.originate(claim)
    recorded = [
        driver_event
        for e in dispatcher.recorder.waiting()
        if e["attempt_id"] == claim.attempt_id and (driver_event := _driver_event(e["type"]))
    ]
    finals = [t for t in drained_transitions(dispatcher) if t.status.is_final]
    if dispatcher.unsent.why(claim.attempt_id) is Unsent.REFUSED:
        assert not finals
        return Verdict((REFUSED, None), recorded, [])
    assert len(finals) == 1, finals
    ending = finals[0].ending
    assert ending is not None
    return Verdict((ending.status, ending.cause), recorded, [])


async def _through_ami(outcome: str, chunks: list[bytes] | None = None) -> Verdict:
    attempt, data = _ami_bytes(outcome)
    dispatcher = make_dispatcher()
    events: list[ChannelEvent] = []
    node = _ami_node(dispatcher, chunks or [data], events)
    dispatcher.nodes.add(node_row("n1"), node)
    verdict = await _dial(dispatcher, attempt)
    return Verdict(verdict.ending, verdict.recorded, [type(e).__name__ for e in events])


async def _through_ari(outcome: str) -> Verdict:
    dispatcher = make_dispatcher()
    events: list[ChannelEvent] = []
    attempt, node = _ari_node(dispatcher, outcome)
    emit = node._keeper.emit

    def spy(event: ChannelEvent) -> None:
        events.append(event)
        emit(event)

    node._keeper.emit = spy  # type: ignore[method-assign]
    dispatcher.nodes.add(node_row("n1", driver="ari"), node)
    verdict = await _dial(dispatcher, attempt)
    return Verdict(verdict.ending, verdict.recorded, [type(e).__name__ for e in events])


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_ami_recording_reaches_its_outcome(outcome: str) -> None:
    verdict = await _through_ami(outcome)
    assert verdict.ending == EXPECTED[outcome]
    assert verdict.recorded[-1] == "OriginateResponse"


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_ari_recording_reaches_its_outcome(outcome: str) -> None:
    verdict = await _through_ari(outcome)
    assert verdict.ending == EXPECTED[outcome]
    assert verdict.recorded[-1] == "OriginateResponse"


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_both_drivers_tell_one_outcome_alike(outcome: str) -> None:
    """The same ending, the same typed events, the same names in the call's story."""
    ami, ari = await _through_ami(outcome), await _through_ari(outcome)
    assert ami.ending == ari.ending
    assert ami.kinds == ari.kinds
    assert ami.recorded == ari.recorded


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_the_ami_outcome_holds_in_any_chunking(outcome: str) -> None:
    _, data = _ami_bytes(outcome)
    for chunks in list(_chunkings(data))[::5]:
        assert (await _through_ami(outcome, chunks)).ending == EXPECTED[outcome]
