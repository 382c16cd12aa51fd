"""Sending: claims taken off the queue as the nodes' room and pace allow, sent in groups spread
over the poll, each group marked sent just before its Originates, then each Originate followed
to its reply."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.dialing import NodeError, NodeNotConnected, OriginateOutcome, OriginateRequest
from orchestrator.domain.errors import StoreError
from orchestrator.domain.outcome import REASON_FAILURE
from orchestrator.domain.planning import TokenBucket, plan_nodes, total_room
from orchestrator.domain.ports import DispatchRepository, Unsent
from orchestrator.domain.records import Claim
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.events import EventRecorder
from orchestrator.services.dispatch.live import LiveAttempts
from orchestrator.services.dispatch.nodes import NodeHandles
from orchestrator.services.dispatch.reconcile import Reconciler
from orchestrator.services.dispatch.settings import (
    REFUSED_FOR_AT_MOST_S,
    REFUSED_REASON,
    REFUSED_TRACKED_MAX,
    SEND_GROUPS,
    SEND_SPREAD,
    DispatchSettings,
)
from orchestrator.services.dispatch.tasks import Background
from orchestrator.services.dispatch.transitions import Transitions
from orchestrator.services.dispatch.unsent import UnsentAttempts

log = structlog.get_logger(__name__)

ORIGINATE_WAIT_BEYOND_RING_S = 15


class RefusedCalls:
    """Calls a node refused to make a channel for (nothing dialed): how many times, and since
    when (monotonic)."""

    def __init__(self) -> None:
        self._calls: dict[UUID, tuple[int, float]] = {}

    def get(self, call_id: UUID) -> tuple[int, float] | None:
        return self._calls.get(call_id)

    def note(self, call_id: UUID, refusals: int, since: float) -> None:
        self._calls[call_id] = (refusals, since)
        if len(self._calls) > REFUSED_TRACKED_MAX:  # calls canceled or expired while queued
            del self._calls[next(iter(self._calls))]

    def forget(self, call_id: UUID) -> None:
        self._calls.pop(call_id, None)


class Sender:
    def __init__(
        self,
        store: DispatchRepository,
        settings: DispatchSettings,
        nodes: NodeHandles,
        live: LiveAttempts,
        transitions: Transitions,
        recorder: EventRecorder,
        unsent: UnsentAttempts,
        reconciler: Reconciler,
        clock: Clock,
        background: Background,
    ) -> None:
        self._store = store
        self._settings = settings
        self._nodes = nodes
        self._live = live
        self._transitions = transitions
        self._recorder = recorder
        self._unsent = unsent
        self._reconciler = reconciler
        self._clock = clock
        self._background = background
        self._bucket = TokenBucket(settings.cps, now=clock.monotonic())
        self.refused = RefusedCalls()

    async def claim_and_dial(self) -> None:
        """One poll: as many claims as the rate, the nodes' room and their pacers allow."""
        now = self._clock.monotonic()
        loads = self._nodes.loads(self._live.per_node(), now)
        wanted = min(self._settings.batch, self._bucket.available(now), total_room(loads))
        if wanted <= 0:
            return
        claims = await self._store.claim(plan_nodes(loads, wanted))
        if not claims:
            return
        self._bucket.take(len(claims), self._clock.monotonic())
        await self._send_spread(claims)

    async def _send_spread(self, claims: list[Claim]) -> None:
        # Asterisk queues what it is sent at once: a poll's claims sent together make the last of
        # them wait for the rest (about 0.2 s for 24 at 120 calls/s). They go in a few groups
        # spread over the poll instead, as a steady stream.
        groups = min(SEND_GROUPS, len(claims))
        spacing_s = self._settings.poll_s * SEND_SPREAD / groups
        started = self._clock.monotonic()
        for n in range(groups):
            group = claims[n::groups]
            if n:
                await self._clock.sleep(max(0.0, started + n * spacing_s - self._clock.monotonic()))
            if self._background.stopped:
                # Never marked sent: known unsent, back to the queue.
                self._unsent.add((c.attempt_id for c in group), Unsent.NOT_SENT)
                continue
            await self._send_group(group)

    async def _send_group(self, claims: list[Claim]) -> None:
        # Marked "sent" in one statement just before the Originates go: if this process dies
        # first, the dispatcher that adopts these attempts knows they were never dialed.
        try:
            marked = await self._store.mark_sending([c.attempt_id for c in claims])
        except StoreError:
            # Whether or not the mark reached the database, none of these was dialed. (Anything
            # else is a bug, logged by the loop's wrapper; these then go back as strays.)
            log.exception("dispatch.mark_sending_failed", count=len(claims))
            self._unsent.add((c.attempt_id for c in claims), Unsent.NOT_SENT)
            return
        self._unsent.note_requeued(marked.requeued)
        now = self._clock.monotonic()
        sent_at = self._clock.now().isoformat()
        for claim in claims:
            if claim.attempt_id in marked.sent:  # any other was adopted, or its node drained
                self._follow(claim, now, sent_at)

    def _follow(self, claim: Claim, now: float, sent_at: str) -> None:
        state = AttemptState(
            claim.attempt_id, claim.call_id, claim.node, number=claim.attempt_number, retry=claim.retry
        )
        self._live.sent(state, claim.ring_timeout_s, now, trunk=claim.trunk, campaign_id=claim.campaign_id)
        self._recorder.record(
            claim.call_id,
            claim.attempt_id,
            claim.claimed_at,
            "dispatch.claimed",
            {
                "node": claim.node,
                "attempt": claim.attempt_number,
                "trunk": claim.trunk,
                "sent_at": sent_at,  # when its Originate left: claim → Originate → answer
            },
        )
        self._background.spawn(self.originate(claim))

    def channel_made(self, node: str, state: AttemptState) -> None:
        """The node's first channel event for the attempt: the node dials again, at its pace."""
        state.channel_made = True
        self.refused.forget(state.call_id)
        pacer = self._nodes.pacer_of(node)
        if pacer is not None:
            pacer.on_channel()

    # ---- one Originate ------------------------------------------------------------------------

    async def originate(self, claim: Claim) -> None:
        key = str(claim.attempt_id)
        state = self._live.get(key)
        if state is None:
            return
        bound = log.bind(
            call_id=str(claim.call_id),
            attempt_id=key,
            node=claim.node,
            campaign_id=str(claim.campaign_id) if claim.campaign_id else None,
        )
        handle = self._nodes.get(claim.node)
        if handle is None:
            self._transitions.push(
                state.on_lost(f"node {claim.node} vanished before dialing", self._clock.now())
            )
            return
        bound.info("dispatch.originate", to=claim.to, trunk=claim.trunk)
        try:
            outcome = await handle.driver.originate(
                self._request(claim), wait_s=claim.ring_timeout_s + ORIGINATE_WAIT_BEYOND_RING_S
            )
        except NodeNotConnected as exc:
            # Refused before anything left: never dialed, so back to the queue, not failed.
            bound.warning("dispatch.originate_not_sent", error=str(exc))
            self._live.forget(key)
            self._unsent.add([claim.attempt_id], Unsent.NOT_SENT)
            return
        except NodeError as exc:
            self._no_reply(claim, bound, exc)
            return
        self._live.acknowledged(key)
        at = self._clock.now()
        self._record_reply(claim, handle.driver.driver, outcome, at)
        if outcome.success:
            self._transitions.push(state.on_originate_response(True, outcome.reason, at))
            return
        await self._failed(claim, state, outcome.reason, bound)

    def _request(self, claim: Claim) -> OriginateRequest:
        return OriginateRequest(
            attempt_id=str(claim.attempt_id),
            to=claim.to,
            trunk=claim.trunk,
            caller_id=claim.from_,
            audio_path=claim.audio_path,
            call_id=str(claim.call_id),
            timeout_ms=claim.ring_timeout_s * 1000,
            max_call_s=self._settings.max_call_s,
            interaction_variables=claim.channel_variables(),
        )

    def _record_reply(self, claim: Claim, driver: str, outcome: OriginateOutcome, at: datetime) -> None:
        self._recorder.record(
            claim.call_id,
            claim.attempt_id,
            at,
            f"{driver}.OriginateResponse",
            {
                "Response": "Success" if outcome.success else "Failure",
                "Reason": str(outcome.reason),
                **({"Message": outcome.message} if outcome.message else {}),
            },
        )

    def _no_reply(self, claim: Claim, bound: Any, exc: NodeError) -> None:
        key = str(claim.attempt_id)
        self._live.unacknowledged(key)
        bound.warning("dispatch.originate_error", error=str(exc))
        self._recorder.record(
            claim.call_id, claim.attempt_id, self._clock.now(), "dispatch.error", {"error": str(exc)}
        )
        # No reply is not no call: the Originate may have reached the node before the link
        # failed, and the call may be ringing, answered or over. Ask the node (channels, then
        # CDR) once it answers, rather than guess.
        self._background.spawn(self._reconciler.settle_unconfirmed(claim.node, key))

    async def _failed(self, claim: Claim, state: AttemptState, reason: int, bound: Any) -> None:
        # The Hangup that usually follows carries the real cause; give it a moment to arrive.
        await self._clock.sleep(self._settings.originate_failure_wait_s)
        refused = reason == REASON_FAILURE and not state.channel_made and not state.ended
        if refused and self._refused(claim, state, bound):
            return
        self._transitions.push(state.on_originate_failed(reason, self._clock.now()))

    def _refused(self, claim: Claim, state: AttemptState, bound: Any) -> bool:
        """The node made no channel for the call. Queued again while the nodes have refused it
        for less than REFUSED_FOR_AT_MOST_S, then failed; True unless a cancel came, which ends
        it canceled as any failed Originate."""
        now = self._clock.monotonic()
        refusals, since = self.refused.get(claim.call_id) or (0, now)
        if not state.cancel_requested and now - since < REFUSED_FOR_AT_MOST_S:
            self._requeue_refused(claim, refusals + 1, since, bound)
            return True
        self.refused.forget(claim.call_id)
        if state.cancel_requested:
            return False
        self._transitions.push(state.on_lost(REFUSED_REASON, self._clock.now()))
        return True

    def _requeue_refused(self, claim: Claim, refusals: int, since: float, bound: Any) -> None:
        """The node made no channel at all (no event for it, no Hangup): nothing was dialed, so
        the call goes back to the queue, not to `failed`, and the node is held back a while. A
        PJSIP node does this for every call to a trunk whose one qualify went unanswered (its
        carrier was busy for a moment), until the next qualify, up to a minute later."""
        bound.warning("dispatch.originate_refused", refusals=refusals, note="queued again, nothing dialed")
        refused = {"node": claim.node, "refusals": refusals}
        self._recorder.record(claim.call_id, claim.attempt_id, self._clock.now(), "dispatch.refused", refused)
        self.refused.note(claim.call_id, refusals, since)
        pacer = self._nodes.pacer_of(claim.node)
        if pacer is not None:
            pacer.on_refused(self._clock.monotonic())
        self._live.forget(str(claim.attempt_id))
        self._unsent.add([claim.attempt_id], Unsent.REFUSED)
