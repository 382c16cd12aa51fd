"""The simulated node's ARI (bench/fake_asterisk) against the recordings of this stack's Asterisk
22 (tests/fixtures/ari/*.jsonl): the same POST reply and the same WebSocket messages (those the
dispatcher's event filter lets through) for the same call, the same typed events and final status
through the project's own driver and dispatcher; a full node answers the POST 500."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from bench.fake_asterisk.calls import Behaviour
from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.ari_events import EVENT_TYPES, ari_event
from orchestrator.asterisk.ari_rest import event_filter, originate_params
from orchestrator.domain.dialing import OriginateOutcome
from orchestrator.domain.events import ChannelEvent
from orchestrator.domain.outcome import REASON_FAILURE
from tests.unit.factories import make_claim
from tests.unit.fake_node_recordings import (
    ARI_PASSWORD,
    SHORT_RING_MS,
    ari_recording,
    dispatched,
    fake_node,
    full_node_refuses,
)
from tests.unit.fakes import eventually, make_dispatcher
from tests.unit.test_replay import EXPECTED, REFUSED

DIALED = ["answered", "busy", "no_answer", "unavailable"]
APP = "sespcl-test"


def _behaviour(outcome: str, **fields: Any) -> Behaviour:
    return Behaviour(capacity=0 if outcome == "no_such_trunk" else 10, **fields)


def _steady(value: Any) -> Any:
    """A message without what differs from call to call anyway: when, the SIP Call-ID, the app."""
    if isinstance(value, dict):
        drop = {"timestamp", "creationtime", "application"}
        kept = {k: _steady(v) for k, v in value.items() if k not in drop}
        if kept.get("protocol_id"):
            kept["protocol_id"] = "<call-id>"
        return kept
    return value


async def _dial_raw(port: int, outcome: str) -> tuple[int, Any, list[dict[str, Any]]]:
    """POST the recorded call over the fake's REST, with the dispatcher's event filter set:
    (status, reply, messages up to the channel's end)."""
    recorded, _, _ = ari_recording(outcome)
    base = f"http://127.0.0.1:{port}/ari"
    auth = {"Authorization": aiohttp.encode_basic_auth("sespcl", ARI_PASSWORD)}
    messages: list[dict[str, Any]] = []
    events = f"{base}/events?app={APP}&subscribeAll=true"
    async with aiohttp.ClientSession(headers=auth) as session, session.ws_connect(events) as ws:
        await session.put(f"{base}/applications/{APP}/eventFilter", json=event_filter())
        query, body = originate_params(recorded.request(SHORT_RING_MS))
        async with session.post(f"{base}/channels/{recorded.attempt_id}", params=query, json=body) as reply:
            status, answer = reply.status, json.loads(await reply.text())
        while status == 200 and not any(m["type"] == "ChannelDestroyed" for m in messages):
            messages.append(json.loads((await ws.receive(timeout=5)).data))
    return status, answer, messages


@pytest.mark.parametrize("outcome", [*DIALED, "no_such_trunk"])
async def test_the_fake_says_what_asterisk_said(outcome: str) -> None:
    recorded, post, messages = ari_recording(outcome)
    async with fake_node(_behaviour(outcome), first_channel=recorded.sequence) as (_, _, port):
        status, reply, said = await _dial_raw(port, outcome)
    assert status == post["status"]
    assert _steady(reply) == _steady(json.loads(post["body"]))
    filtered = [m for m in messages if m["type"] in EVENT_TYPES]
    assert [_steady(m) for m in said] == [_steady(m) for m in filtered]


def _said(events: list[ChannelEvent]) -> list[tuple[object, ...]]:
    return [(type(e), e.attempt_id, e.state, e.recorded) for e in events]


def _driver(port: int, on_event: Any) -> AriNode:
    url = f"http://127.0.0.1:{port}/ari"
    return AriNode("n1", url=url, username="sespcl", password=ARI_PASSWORD, on_event=on_event, app=APP)


@pytest.mark.parametrize("outcome", DIALED)
async def test_the_driver_reads_the_fake_as_it_read_asterisk(outcome: str) -> None:
    recorded, _, messages = ari_recording(outcome)
    expected = [e for m in messages if (e := ari_event(m, make_claim("n1").claimed_at)) is not None]
    events: list[ChannelEvent] = []
    async with fake_node(_behaviour(outcome), first_channel=recorded.sequence) as (_, _, port):
        node = _driver(port, lambda _, event: events.append(event))
        node.connect()
        assert await node.wait_up(5)
        await node.originate(recorded.request(SHORT_RING_MS), wait_s=5)
        await eventually(lambda: len(events) >= len(expected))
        await node.aclose()
    assert _said(events) == _said(expected)


@pytest.mark.parametrize("outcome", [*DIALED, "no_such_trunk"])
async def test_the_dispatcher_ends_each_call_as_on_asterisk(outcome: str) -> None:
    recorded, _, _ = ari_recording(outcome)
    dispatcher = make_dispatcher()
    async with fake_node(_behaviour(outcome)) as (_, _, port):
        ending = await dispatched(dispatcher, _driver(port, dispatcher.on_node_event), recorded)
    assert (ending or (REFUSED, None)) == EXPECTED[outcome]


async def test_a_full_node_refuses_and_lists_its_live_channels() -> None:
    events: list[ChannelEvent] = []
    async with fake_node(Behaviour(capacity=1, call_s=30)) as (fake, _, port):
        node = _driver(port, lambda _, event: events.append(event))
        await full_node_refuses(
            node, events, OriginateOutcome(False, REASON_FAILURE, "500 Allocation failed")
        )
    assert (fake.dialed, fake.refusals) == (1, 1)
