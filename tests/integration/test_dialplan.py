"""The nodes' dialplan on a real Asterisk, driven over AMI with the orchestrator's own Originate
action: what holds on the node even when no dispatcher is listening."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from panoramisk import Manager

from orchestrator.asterisk.ami import originate_action
from orchestrator.domain.dialing import OriginateRequest
from tests.integration.cli import stack_env

NODE_AMI = ("127.0.10.1", 5038)


@pytest.fixture()
def silence() -> Iterator[str]:
    """Twenty seconds of mu-law silence in the audio directory: longer than the call may last."""
    path = Path(os.environ["SESPCL_AUDIO_DIR"]) / f"test-silence-{uuid.uuid4().hex}"
    path.with_suffix(".ulaw").write_bytes(b"\xff" * 8000 * 20)
    try:
        yield str(path)
    finally:
        path.with_suffix(".ulaw").unlink(missing_ok=True)


async def test_an_answered_call_ends_at_its_maximum_length(silence: str) -> None:
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=NODE_AMI[0],
        port=NODE_AMI[1],
        username="sespcl",
        secret=stack_env()["SESPCL_AMI_SECRET"],
        ping_delay=3600,
    )
    await manager.connect()
    attempt = str(uuid.uuid4())
    seen: dict[str, tuple[float, dict[str, Any]]] = {}
    hung_up = asyncio.Event()

    def on_event(_: Manager, event: Any) -> None:
        if event.get("Uniqueid") != attempt:
            return
        name = event.get("UserEvent") or event.get("Event")
        seen.setdefault(name, (time.monotonic(), dict(event)))
        if event.get("Event") == "Hangup":
            hung_up.set()

    manager.register_event("*", on_event)
    try:
        request = OriginateRequest(
            attempt_id=attempt,
            to="+14155550123",
            trunk="demo",
            caller_id=None,
            audio_path=silence,
            call_id=attempt,
            timeout_ms=10_000,
            max_call_s=2,
        )
        await manager.send_action(originate_action(request))
        await asyncio.wait_for(hung_up.wait(), 20)
    finally:
        manager.close()
    assert "SespclAnswered" in seen and "SespclMaxCallLength" in seen, sorted(seen)
    lasted = seen["Hangup"][0] - seen["SespclAnswered"][0]
    assert 1.5 < lasted < 4.0, f"hung up {lasted:.1f} s after the answer, the limit being 2 s"
    assert seen["Hangup"][1]["Cause"] == "16"
