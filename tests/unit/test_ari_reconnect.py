"""AriNode across a dropped event WebSocket, against a fake ARI server (tests/unit/fake_ari.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.ari_rest import AriError
from orchestrator.domain.dialing import OriginateRequest
from tests.unit.fake_ari import FakeAri, serve


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
