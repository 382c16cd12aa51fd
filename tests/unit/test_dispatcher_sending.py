"""How a poll's claims leave the dispatcher: in a few groups spread over the poll, each marked
sent just before it goes, never all at once (Asterisk queues a burst: the last of it waits for
the rest). Fake ports; the real thing is in the integration tests and bench/dispatch.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from orchestrator.domain.dialing import OriginateOutcome, OriginateRequest
from orchestrator.domain.pacing import NodeLoad
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import Claim, Marked
from orchestrator.services.dispatcher import SEND_GROUPS, SEND_SPREAD
from tests.unit.test_dispatcher_node_faults import _claim, _dispatcher


class RecordingNode:
    driver = "ami"
    version = None
    boot_id: str | None = None
    up = True

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        self.sent[request.attempt_id] = time.monotonic()
        return OriginateOutcome(True, 4)


class ClaimingStore:
    def __init__(self, claims: list[Claim]) -> None:
        self._claims = claims
        self.marked: list[tuple[float, list[uuid.UUID]]] = []

    async def claim(self, plan: list[str]) -> list[Claim]:
        return self._claims[: len(plan)]

    async def mark_sending(self, attempt_ids: list[uuid.UUID]) -> Marked:
        self.marked.append((time.monotonic(), attempt_ids))
        return Marked(frozenset(attempt_ids))


def _polling(claims: list[Claim]) -> tuple[Any, ClaimingStore, RecordingNode]:
    store = ClaimingStore(claims)
    dispatcher = _dispatcher(store)
    node = RecordingNode()
    dispatcher._nodes["n1"] = node  # type: ignore[assignment]
    dispatcher._loads = lambda now: [NodeLoad("n1", 0, 1000, True, False)]  # type: ignore[method-assign]
    return dispatcher, store, node


async def test_a_polls_claims_go_out_in_groups_spread_over_the_poll() -> None:
    claims = [_claim("n1") for _ in range(12)]
    dispatcher, store, node = _polling(claims)
    started = time.monotonic()
    await dispatcher._claim_and_dial()
    await asyncio.sleep(0.05)  # the last group's originate tasks
    spacing = dispatcher._settings.poll_s * SEND_SPREAD / SEND_GROUPS
    assert len(store.marked) > 1, "not all at once"
    assert [len(ids) for _, ids in store.marked] == [12 // SEND_GROUPS] * SEND_GROUPS
    marks = [at for at, _ in store.marked] + [float("inf")]
    for n, (marked_at, ids) in enumerate(store.marked):
        assert marked_at - started >= n * spacing - 0.005, f"group {n} went out early"
        # Marked sent just before its Originates, which go before the next group is marked.
        assert all(marked_at <= node.sent[str(i)] < marks[n + 1] for i in ids)
    assert sorted(node.sent) == sorted(str(c.attempt_id) for c in claims), "each claim sent once"


async def test_a_stop_during_the_spread_keeps_the_rest_unsent_for_the_queue() -> None:
    claims = [_claim("n1") for _ in range(8)]
    dispatcher, store, node = _polling(claims)
    poll = asyncio.ensure_future(dispatcher._claim_and_dial())
    await asyncio.sleep(0.01)  # the first group is out
    dispatcher.stop()
    await poll
    sent = {uuid.UUID(key) for key in node.sent}
    assert len(store.marked) == 1 and set(store.marked[0][1]) == sent
    rest = {c.attempt_id for c in claims} - sent
    assert dispatcher._unsent == dict.fromkeys(rest, Unsent.NOT_SENT), "the rest go back to the queue"
