"""The dispatcher's answer to a node link that fails at the wrong moment, with fake ports (the
real thing is in tests/integration/test_faults.py): an Originate refused before it was sent goes
back to the queue, and a cancel sent to a node that never answers holds back no other."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import NodeNotConnected, OriginateOutcome, OriginateRequest
from orchestrator.domain.outcome import REASON_FAILURE
from orchestrator.domain.pacing import NodePacer
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import Claim
from orchestrator.services.dispatcher import (
    CHANNEL_EXPECTED_AFTER_S,
    REFUSED_FOR_AT_MOST_S,
    REFUSED_REASON,
    Dispatcher,
    DispatchSettings,
)


class FakeNode:
    driver = "ami"
    version = None
    boot_id: str | None = None

    def __init__(self, name: str, *, connected: bool = True, hangup_hangs: bool = False) -> None:
        self.name = name
        self._connected = connected
        self._hangup_hangs = hangup_hangs
        self.hung_up: list[str] = []

    @property
    def up(self) -> bool:
        return True

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        if not self._connected:
            raise NodeNotConnected(f"node {self.name} is not connected")
        return OriginateOutcome(True, 4)

    async def hangup(self, channel: str, cause: int = 16) -> None:
        if self._hangup_hangs:
            await asyncio.sleep(3600)
        self.hung_up.append(channel)


class FakeStore:
    def __init__(self, cancel: list[uuid.UUID]) -> None:
        self._cancel = cancel

    async def cancel_requests(self) -> list[uuid.UUID]:
        return self._cancel


def _dispatcher(store: Any = None) -> Dispatcher:
    settings = DispatchSettings(
        poll_s=0.2,
        batch=50,
        cps=100,
        max_call_s=600,
        finalize_grace_s=30,
        originate_failure_wait_s=0.0,
        events_flush_s=1.0,
        events_batch_max=1000,
    )

    async def reachable(_: Any) -> bool:
        return True

    return Dispatcher(store, lambda *a: None, None, settings, reachable)  # type: ignore[arg-type]


def _claim(node: str) -> Claim:
    return Claim(
        call_id=uuid.uuid4(),
        attempt_id=uuid.uuid4(),
        attempt_number=1,
        node=node,
        to="+14155550100",
        from_=None,
        trunk="demo",
        audio_path="/var/lib/sespcl/audio/x",
        ring_timeout_s=30,
        claimed_at=datetime.now(UTC),
    )


async def test_an_originate_refused_before_it_was_sent_is_queued_again_not_failed() -> None:
    dispatcher = _dispatcher()
    claim = _claim("n1")
    key = str(claim.attempt_id)
    dispatcher._nodes["n1"] = FakeNode("n1", connected=False)  # type: ignore[assignment]
    dispatcher._attempts[key] = AttemptState(claim.attempt_id, claim.call_id, "n1")
    dispatcher._started[key] = (time.monotonic(), 30)
    pacer = dispatcher._pacers["n1"] = NodePacer(now=time.monotonic())
    pacer.on_sent(1, time.monotonic())
    dispatcher._unacked[key] = ("n1", time.monotonic())
    await dispatcher._originate(claim)
    assert dispatcher._unsent.get(claim.attempt_id) is Unsent.NOT_SENT, "handed to the requeue"
    assert key not in dispatcher._attempts and key not in dispatcher._started
    assert pacer.outstanding == 0, "its in-flight slot is freed, not held until forgotten (10 s)"
    assert len(dispatcher._transitions) == 0, "no status stored for it: it was never dialed"


async def test_a_cancel_to_a_node_that_never_answers_holds_back_no_other() -> None:
    stuck, fine = _claim("n1"), _claim("n2")
    dispatcher = _dispatcher(FakeStore([stuck.call_id, fine.call_id]))
    nodes = {"n1": FakeNode("n1", hangup_hangs=True), "n2": FakeNode("n2")}
    dispatcher._nodes.update(nodes)  # type: ignore[arg-type]
    old = time.monotonic() - CHANNEL_EXPECTED_AFTER_S - 1
    for claim in (stuck, fine):
        key = str(claim.attempt_id)
        dispatcher._attempts[key] = AttemptState(claim.attempt_id, claim.call_id, claim.node)
        dispatcher._started[key] = (old, 30)
    task = asyncio.ensure_future(dispatcher._hang_up_canceled())
    await asyncio.sleep(0.1)
    # n2's attempt never had its channel seen (its first event was missed): hung up by its id.
    assert nodes["n2"].hung_up == [str(fine.attempt_id)]
    task.cancel()


async def test_a_young_attempt_without_a_channel_is_not_hung_up_yet() -> None:
    claim = _claim("n1")
    dispatcher = _dispatcher(FakeStore([claim.call_id]))
    node = FakeNode("n1")
    dispatcher._nodes["n1"] = node  # type: ignore[assignment]
    key = str(claim.attempt_id)
    dispatcher._attempts[key] = AttemptState(claim.attempt_id, claim.call_id, "n1")
    dispatcher._started[key] = (time.monotonic(), 30)
    await dispatcher._hang_up_canceled()
    assert node.hung_up == [] and dispatcher._attempts[key].cancel_requested


async def test_an_ami_hangup_whose_reply_never_comes_gives_up() -> None:
    """panoramisk forgets a Hangup when the link drops: its reply would never come."""
    import pytest

    from orchestrator.asterisk.ami import AmiError, AmiNode

    class SilentManager:
        def send_action(self, action: dict[str, Any]) -> asyncio.Future[Any]:
            return asyncio.get_running_loop().create_future()

    node = AmiNode("n1", host="127.0.0.1", port=5038, username="u", secret="s", on_event=lambda *a: None)
    node._manager = SilentManager()  # type: ignore[assignment]
    node._logged_in.set()
    with pytest.raises(AmiError, match="no reply to Hangup"):
        await node.hangup("PJSIP/x-1", timeout=0.05)


async def test_a_reconnect_during_a_reconcile_pass_gets_a_pass_of_its_own() -> None:
    """Link back (pass 1 lists the channels), the call ends unseen while the link is down again,
    link back during pass 1: a second pass sees the channel gone and settles it from the CDR,
    rather than leave it to the overdue sweep (which would end an answered call failed)."""
    from orchestrator.domain.call import CallStatus

    class Store:
        async def mark_node(self, *args: Any, **kwargs: Any) -> None:
            pass

        async def cdr_dispositions(self, keys: list[str]) -> dict[str, str]:
            return {key: "ANSWERED" for key in keys}

    class ListingNode:
        driver = "ari"
        version = None
        boot_id = None
        up = True

        def __init__(self) -> None:
            self.channels: dict[str, str] = {}

        async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]:
            return dict(self.channels)

    dispatcher = _dispatcher(Store())
    node = ListingNode()
    dispatcher._nodes["n1"] = node  # type: ignore[assignment]
    claim = _claim("n1")
    key = str(claim.attempt_id)
    dispatcher._attempts[key] = AttemptState(
        claim.attempt_id, claim.call_id, "n1", status=CallStatus.IN_PROGRESS, answered=True
    )
    dispatcher._started[key] = (time.monotonic() - 30, 30)
    node.channels[key] = "Up"
    dispatcher._on_node_state("n1", True)  # pass 1 lists the channels 1 s from now
    await asyncio.sleep(1.3)
    del node.channels[key]  # hung up while nobody listened
    dispatcher._on_node_state("n1", False)
    dispatcher._on_node_state("n1", True)  # during pass 1
    await asyncio.sleep(6.5)
    assert [t.status for t in dispatcher._transitions.drain()] == [CallStatus.COMPLETED]


class RefusingNode(FakeNode):
    """PJSIP with no usable contact for the trunk: the Originate fails, no channel is made."""

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        return OriginateOutcome(False, REASON_FAILURE)


def _dialing(dispatcher: Dispatcher, claim: Claim) -> NodePacer:
    key = str(claim.attempt_id)
    dispatcher._attempts[key] = AttemptState(claim.attempt_id, claim.call_id, claim.node)
    dispatcher._started[key] = (time.monotonic(), 30)
    pacer = dispatcher._pacers.setdefault(claim.node, NodePacer(now=time.monotonic()))
    pacer.on_sent(1, time.monotonic())
    dispatcher._unacked[key] = (claim.node, time.monotonic())
    return pacer


async def test_a_call_the_node_made_no_channel_for_is_queued_again_and_the_node_held() -> None:
    dispatcher = _dispatcher()
    dispatcher._nodes["n1"] = RefusingNode("n1")  # type: ignore[assignment]
    claim = _claim("n1")
    for refusal in range(1, 4):
        attempt = dataclasses.replace(claim, attempt_id=uuid.uuid4())  # each claim is a new attempt
        pacer = _dialing(dispatcher, attempt)
        await dispatcher._originate(attempt)
        assert dispatcher._unsent.get(attempt.attempt_id) is Unsent.REFUSED, "queued: nothing dialed"
        assert str(attempt.attempt_id) not in dispatcher._attempts
        assert len(dispatcher._transitions) == 0, "not failed"
        assert dispatcher._refused[claim.call_id][0] == refusal, "the call's refusals are counted"
        assert pacer.state(time.monotonic()).refusals == 1, "one hold: all came within it"
        assert pacer.allowance(time.monotonic()) == 0, "the node is held"
    assert [event["type"] for event in dispatcher._events].count("dispatch.refused") == 3
    # Refused for longer than a qualify period: it ends failed, as any failed Originate.
    dispatcher._refused[claim.call_id] = (3, time.monotonic() - REFUSED_FOR_AT_MOST_S)
    last = dataclasses.replace(claim, attempt_id=uuid.uuid4())
    _dialing(dispatcher, last)
    await dispatcher._originate(last)
    assert last.attempt_id not in dispatcher._unsent
    [failed] = dispatcher._transitions.drain()
    assert failed.status is CallStatus.FAILED and failed.attempt_id == last.attempt_id
    assert failed.ending is not None and failed.ending.reason == REFUSED_REASON
    assert claim.call_id not in dispatcher._refused


async def test_a_failed_originate_after_its_channel_was_made_is_not_a_refusal() -> None:
    dispatcher = _dispatcher()
    dispatcher._nodes["n1"] = RefusingNode("n1")  # type: ignore[assignment]
    claim = _claim("n1")
    pacer = _dialing(dispatcher, claim)
    channel = {"Uniqueid": str(claim.attempt_id), "Channel": "PJSIP/demo-00000001"}
    dispatcher._on_node_event("n1", "Newchannel", channel)
    await dispatcher._originate(claim)
    [failed] = dispatcher._transitions.drain()
    assert failed.status is CallStatus.FAILED, "a channel was made: something may have been dialed"
    assert not dispatcher._unsent and pacer.state(time.monotonic()).refusals == 0


def test_a_node_back_with_another_start_time_lost_every_call_it_carried() -> None:
    """Supervised nodes come back within seconds of a crash: a call that was answered on the old
    process would otherwise look 'completed' (channel gone, no CDR) though it was cut off."""
    dispatcher = _dispatcher()
    node = FakeNode("n2")
    dispatcher._nodes["n2"] = node  # type: ignore[assignment]
    answered = _claim("n2")
    dispatcher._attempts[str(answered.attempt_id)] = AttemptState(
        answered.attempt_id, answered.call_id, "n2", status=CallStatus.IN_PROGRESS, answered=True
    )
    elsewhere = _claim("n1")
    dispatcher._attempts[str(elsewhere.attempt_id)] = AttemptState(
        elsewhere.attempt_id, elsewhere.call_id, "n1"
    )
    node.boot_id = "2026-12-06 23:52:05"
    dispatcher._check_restart("n2")  # first sight: nothing to compare with
    node.boot_id = "2026-12-06 23:52:05"
    dispatcher._check_restart("n2")  # a link that was cut: the same process
    assert len(dispatcher._transitions) == 0
    node.boot_id = "2026-12-06 23:56:50"
    dispatcher._check_restart("n2")
    stored = dispatcher._transitions.drain()
    assert [(t.call_id, t.status) for t in stored] == [(answered.call_id, CallStatus.FAILED)]
    assert stored[0].ending is not None and "restarted" in (stored[0].ending.reason or "")
