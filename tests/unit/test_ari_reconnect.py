"""AriNode across a dropped event WebSocket, against a fake ARI server (tests/unit/fake_ari.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.ari_rest import AriError
from orchestrator.domain.dialing import OriginateRequest
from tests.unit.fake_ari import FakeAri, serve
from tests.unit.fakes import eventually


def _request(attempt_id: str) -> OriginateRequest:
    return OriginateRequest(
        attempt_id=attempt_id,
        to="+14155550100",
        trunk="demo",
        caller_id=None,
        audio_path="/var/lib/sespcl/audio/x",
        call_id=str(uuid.uuid4()),
        timeout_ms=30_000,
        max_call_s=60,
    )


async def test_a_channel_that_ended_while_its_post_spanned_a_reconnect_is_settled_at_once() -> None:
    """The POST is out when the event socket drops and comes back; the channel ends in the gap,
    its events seen by neither socket. Asked about once the POST returns, not left to wait its
    whole ring timeout."""
    fake = FakeAri()
    runner, port = await serve(fake)
    node = AriNode(
        "n1", url=f"http://127.0.0.1:{port}/ari", username="u", password="p", on_event=lambda *a: None
    )
    try:
        node.connect()
        assert await node.wait_up(5)
        attempt = str(uuid.uuid4())

        async def created(ident: str) -> None:
            fake.channels[ident] = "Down"

        fake.on_post = created
        fake.post_delay_s = 2.0
        originate = asyncio.ensure_future(node.originate(_request(attempt), wait_s=30))
        await asyncio.sleep(0.2)
        await fake.drop_event_sockets()
        await asyncio.sleep(0.3)
        fake.channels.pop(attempt)  # ended (busy, say) while no socket listened
        with pytest.raises(AriError, match="while events were not received"):
            await asyncio.wait_for(originate, 10)
    finally:
        await node.aclose()
        await runner.cleanup()


async def test_after_a_reconnection_a_call_answered_unseen_is_settled_and_up_comes_after_the_info() -> None:
    """The event socket drops while an Originate waits; the call is answered in the gap. Once
    the keeper has the socket back (and the node's version read before saying so), the resync
    finds the channel up: the Originate is answered, not left to time out."""
    fake = FakeAri()
    runner, port = await serve(fake)
    states: list[tuple[bool, str | None]] = []
    node: AriNode

    def on_state(name: str, up: bool) -> None:
        states.append((up, node.version))

    node = AriNode(
        "n1",
        url=f"http://127.0.0.1:{port}/ari",
        username="u",
        password="p",
        on_event=lambda *a: None,
        on_state=on_state,
    )
    try:
        node.connect()
        assert await node.wait_up(5)
        assert states == [(True, "22.fake")]
        attempt = str(uuid.uuid4())

        async def created(ident: str) -> None:
            fake.channels[ident] = "Down"

        fake.on_post = created
        originate = asyncio.ensure_future(node.originate(_request(attempt), wait_s=30))
        await eventually(lambda: attempt in fake.channels)
        await asyncio.sleep(0.1)  # the POST's reply is in: the Originate waits for its channel
        await fake.drop_event_sockets()
        fake.channels[attempt] = "Up"  # answered while no socket listened
        outcome = await asyncio.wait_for(originate, 10)
        assert outcome.success and outcome.reason == 4
        assert states[1:] == [(False, "22.fake"), (True, "22.fake")]
    finally:
        await node.aclose()
        await runner.cleanup()
