"""How a poll's claims leave the dispatcher: in a few groups spread over the poll, each marked
sent just before it goes, never all at once (Asterisk queues a burst: the last of it waits for
the rest). Fake ports; the real thing is in the integration tests and bench/dispatch.py."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from orchestrator.domain.pacing import PacerSettings
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import Claim
from orchestrator.services.dispatch import SEND_GROUPS, SEND_SPREAD, Dispatcher
from tests.unit.factories import make_claim
from tests.unit.fakes import SETTINGS, FakeClock, FakeNode, FakeStore, make_dispatcher, settle

FAST_NODE = dataclasses.replace(SETTINGS, pacer=PacerSettings(initial_rate=500.0))
"""Paced fast enough from the start to take a whole poll's claims."""


def _polling(claims: list[Claim]) -> tuple[Dispatcher, FakeStore, FakeNode, FakeClock]:
    clock = FakeClock()
    store = FakeStore(claims=claims, clock=clock)
    node = FakeNode("n1", clock=clock)
    return make_dispatcher(store, clock=clock, settings=FAST_NODE, nodes=(node,)), store, node, clock


async def test_a_polls_claims_go_out_in_groups_spread_over_the_poll() -> None:
    claims = [make_claim("n1") for _ in range(12)]
    dispatcher, store, node, clock = _polling(claims)
    started = clock.monotonic()
    poll = asyncio.ensure_future(dispatcher.sender.claim_and_dial())
    await clock.advance(FAST_NODE.poll_s)
    await poll
    await settle()  # the last group's originate tasks
    spacing = FAST_NODE.poll_s * SEND_SPREAD / SEND_GROUPS
    assert len(store.marked) > 1, "not all at once"
    assert [len(ids) for _, ids in store.marked] == [12 // SEND_GROUPS] * SEND_GROUPS
    marks = [at for at, _ in store.marked] + [float("inf")]
    for n, (marked_at, ids) in enumerate(store.marked):
        assert marked_at - started >= n * spacing - 1e-9, f"group {n} went out early"
        # Marked sent just before its Originates, which go before the next group is marked.
        assert all(marked_at <= node.sent[str(i)] < marks[n + 1] for i in ids)
    assert sorted(node.sent) == sorted(str(c.attempt_id) for c in claims), "each claim sent once"


async def test_a_stop_during_the_spread_keeps_the_rest_unsent_for_the_queue() -> None:
    claims = [make_claim("n1") for _ in range(8)]
    dispatcher, store, node, clock = _polling(claims)
    poll = asyncio.ensure_future(dispatcher.sender.claim_and_dial())
    await clock.advance(0.01)  # the first group is out
    dispatcher.stop()
    await clock.advance(FAST_NODE.poll_s)
    await poll
    sent = {uuid.UUID(key) for key in node.sent}
    assert len(store.marked) == 1 and set(store.marked[0][1]) == sent
    rest = {c.attempt_id for c in claims} - sent
    assert all(dispatcher.unsent.why(a) is Unsent.NOT_SENT for a in rest), "the rest go back to the queue"
    assert len(dispatcher.unsent) == len(rest), "and only they"


async def test_the_unsent_go_back_not_sent_first_then_refused_then_strays() -> None:
    """One store method, the reason as its argument, in the order the twin methods ran."""
    dispatcher, store, _, _ = _polling([])
    not_sent, refused = uuid.uuid4(), uuid.uuid4()
    dispatcher.unsent.add([refused], Unsent.REFUSED)
    dispatcher.unsent.add([not_sent], Unsent.NOT_SENT)
    await dispatcher.unsent.requeue()
    assert [why for why, _ in store.requeued] == ["NOT_SENT", "REFUSED", "stray"]
    assert store.requeued[:2] == [("NOT_SENT", [not_sent]), ("REFUSED", [refused])]
    assert len(dispatcher.unsent) == 0, "each is requeued once"
