"""The dispatcher's answer to a node link that fails at the wrong moment, with fake ports (the
real thing is in tests/integration/test_faults.py): an Originate refused before it was sent goes
back to the queue, and a cancel sent to a node that never answers holds back no other."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import OriginateOutcome
from orchestrator.domain.events import ChannelCreated
from orchestrator.domain.outcome import REASON_FAILURE
from orchestrator.domain.pacing import NodePacer
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import Claim
from orchestrator.services.dispatch import (
    CHANNEL_EXPECTED_AFTER_S,
    REFUSED_FOR_AT_MOST_S,
    REFUSED_REASON,
    Dispatcher,
)
from tests.unit.factories import make_claim, state_of
from tests.unit.fakes import (
    FakeClock,
    FakeNode,
    FakeStore,
    SilentManager,
    ami_up,
    drained_transitions,
    eventually,
    make_dispatcher,
)


def _dialing(dispatcher: Dispatcher, claim: Claim) -> NodePacer:
    """`claim`'s Originate is on its way to its node: followed, and in flight on its pacer."""
    dispatcher.live.sent(
        state_of(claim), claim.ring_timeout_s, dispatcher.clock.monotonic(), trunk="carrier-a"
    )
    pacer = dispatcher.nodes.pacer_of(claim.node)
    assert pacer is not None and pacer.outstanding > 0
    return pacer


async def test_an_originate_refused_before_it_was_sent_is_queued_again_not_failed() -> None:
    dispatcher = make_dispatcher(nodes=(FakeNode("n1", connected=False),))
    claim = make_claim("n1")
    pacer = _dialing(dispatcher, claim)
    await dispatcher.sender.originate(claim)
    assert dispatcher.unsent.why(claim.attempt_id) is Unsent.NOT_SENT, "handed to the requeue"
    assert str(claim.attempt_id) not in dispatcher.live
    assert pacer.outstanding == 0, "its in-flight slot is freed, not held until forgotten (10 s)"
    assert len(dispatcher.transitions) == 0, "no status stored for it: it was never dialed"


async def test_a_cancel_to_a_node_that_never_answers_holds_back_no_other() -> None:
    stuck, fine = make_claim("n1"), make_claim("n2")
    nodes = (FakeNode("n1", hangup_hangs=True), FakeNode("n2"))
    clock = FakeClock()
    dispatcher = make_dispatcher(FakeStore(cancel=[stuck.call_id, fine.call_id]), clock=clock, nodes=nodes)
    for claim in (stuck, fine):
        dispatcher.live.adopted(
            state_of(claim), clock.monotonic() - CHANNEL_EXPECTED_AFTER_S - 1, 30, trunk="carrier-a"
        )
    task = asyncio.ensure_future(dispatcher.sweeps.hang_up_canceled())
    # n2's attempt never had its channel seen (its first event was missed): hung up by its id.
    await eventually(lambda: nodes[1].hung_up)
    assert nodes[1].hung_up == [str(fine.attempt_id)]
    assert not task.done(), "n1's hangup still hangs"
    task.cancel()


async def test_a_young_attempt_without_a_channel_is_not_hung_up_yet() -> None:
    claim = make_claim("n1")
    node = FakeNode("n1")
    dispatcher = make_dispatcher(FakeStore(cancel=[claim.call_id]), nodes=(node,))
    dispatcher.live.adopted(state_of(claim), dispatcher.clock.monotonic(), 30, trunk="carrier-a")
    await dispatcher.sweeps.hang_up_canceled()
    state = dispatcher.live.get(str(claim.attempt_id))
    assert node.hung_up == [] and state is not None and state.cancel_requested


async def test_an_ami_hangup_whose_reply_never_comes_gives_up() -> None:
    """panoramisk forgets a Hangup when the link drops: its reply would never come."""
    import pytest

    from orchestrator.asterisk.ami import AmiNode
    from orchestrator.domain.dialing import NodeTimeout

    node = AmiNode("n1", host="127.0.0.1", port=5038, username="u", secret="s", on_event=lambda *a: None)
    ami_up(node, SilentManager())
    with pytest.raises(NodeTimeout, match="Hangup on n1: no reply within 0.05 s"):
        await node.hangup("PJSIP/x-1", timeout=0.05)


async def test_a_reconnect_during_a_reconcile_pass_gets_a_pass_of_its_own() -> None:
    """Link back (pass 1 lists the channels), the call ends unseen while the link is down again,
    link back during pass 1: a second pass sees the channel gone and settles it from the CDR,
    rather than leave it to the overdue sweep (which would end an answered call failed)."""
    clock = FakeClock()
    node = FakeNode("n1", driver="ari")
    dispatcher = make_dispatcher(FakeStore(cdr="ANSWERED"), clock=clock, nodes=(node,))
    claim = make_claim("n1")
    key = str(claim.attempt_id)
    state = state_of(claim, status=CallStatus.IN_PROGRESS, answered=True)
    dispatcher.live.adopted(state, clock.monotonic() - 30, 30, trunk="carrier-a")
    node.channels[key] = "Up"
    dispatcher.on_node_state("n1", True)  # pass 1 lists the channels 1 s from now
    await clock.advance(1.3)
    del node.channels[key]  # hung up while nobody listened
    dispatcher.on_node_state("n1", False)
    dispatcher.on_node_state("n1", True)  # during pass 1
    await clock.advance(6.5)
    assert [t.status for t in drained_transitions(dispatcher)] == [CallStatus.COMPLETED]


class RefusingNode(FakeNode):
    """PJSIP with no usable contact for the trunk: the Originate fails, no channel is made."""

    def __init__(self, name: str) -> None:
        super().__init__(name, outcome=OriginateOutcome(False, REASON_FAILURE))


async def test_a_call_the_node_made_no_channel_for_is_queued_again_and_the_node_held() -> None:
    dispatcher = make_dispatcher(nodes=(RefusingNode("n1"),))
    now = dispatcher.clock.monotonic
    claim = make_claim("n1")
    for refusal in range(1, 4):
        attempt = dataclasses.replace(claim, attempt_id=uuid.uuid4())  # each claim is a new attempt
        pacer = _dialing(dispatcher, attempt)
        await dispatcher.sender.originate(attempt)
        assert dispatcher.unsent.why(attempt.attempt_id) is Unsent.REFUSED, "queued: nothing dialed"
        assert str(attempt.attempt_id) not in dispatcher.live
        assert len(dispatcher.transitions) == 0, "not failed"
        refused = dispatcher.sender.refused.get(claim.call_id)
        assert refused is not None and refused[0] == refusal, "the call's refusals are counted"
        assert pacer.state(now()).refusals == 1, "one hold: all came within it"
        assert pacer.allowance(now()) == 0, "the node is held"
    assert [event["type"] for event in dispatcher.recorder.waiting()].count("dispatch.refused") == 3
    # Refused for longer than a qualify period: it ends failed, as any failed Originate.
    dispatcher.sender.refused.note(claim.call_id, 3, now() - REFUSED_FOR_AT_MOST_S)
    last = dataclasses.replace(claim, attempt_id=uuid.uuid4())
    _dialing(dispatcher, last)
    await dispatcher.sender.originate(last)
    assert dispatcher.unsent.why(last.attempt_id) is None
    [failed] = drained_transitions(dispatcher)
    assert failed.status is CallStatus.FAILED and failed.attempt_id == last.attempt_id
    assert failed.ending is not None and failed.ending.reason == REFUSED_REASON
    assert dispatcher.sender.refused.get(claim.call_id) is None


async def test_a_failed_originate_after_its_channel_was_made_is_not_a_refusal() -> None:
    dispatcher = make_dispatcher(nodes=(RefusingNode("n1"),))
    claim = make_claim("n1")
    pacer = _dialing(dispatcher, claim)
    channel = ChannelCreated(
        attempt_id=str(claim.attempt_id), at=dispatcher.clock.now(), channel="PJSIP/demo-00000001"
    )
    dispatcher.on_node_event("n1", channel)
    await dispatcher.sender.originate(claim)
    [failed] = drained_transitions(dispatcher)
    assert failed.status is CallStatus.FAILED, "a channel was made: something may have been dialed"
    assert len(dispatcher.unsent) == 0 and pacer.state(dispatcher.clock.monotonic()).refusals == 0


def test_a_node_back_with_another_start_time_lost_every_call_it_carried() -> None:
    """Supervised nodes come back within seconds of a crash: a call that was answered on the old
    process would otherwise look 'completed' (channel gone, no CDR) though it was cut off."""
    node = FakeNode("n2")
    dispatcher = make_dispatcher(nodes=(node,))
    answered = make_claim("n2")
    dispatcher.live.adopted(
        state_of(answered, status=CallStatus.IN_PROGRESS, answered=True), 0.0, 30, trunk="carrier-a"
    )
    elsewhere = make_claim("n1")
    dispatcher.live.adopted(state_of(elsewhere), 0.0, 30, trunk="carrier-a")
    node.boot_id = "2026-12-06 23:52:05"
    dispatcher.watch.check_restart("n2")  # first sight: nothing to compare with
    node.boot_id = "2026-12-06 23:52:05"
    dispatcher.watch.check_restart("n2")  # a link that was cut: the same process
    assert len(dispatcher.transitions) == 0
    node.boot_id = "2026-12-06 23:56:50"
    dispatcher.watch.check_restart("n2")
    stored = drained_transitions(dispatcher)
    assert [(t.call_id, t.status) for t in stored] == [(answered.call_id, CallStatus.FAILED)]
    assert stored[0].ending is not None and "restarted" in (stored[0].ending.reason or "")
