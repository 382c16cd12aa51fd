"""The dispatcher: takes dialable calls off the queue, originates them on the farm, and follows
each attempt through Asterisk's events to a final status."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from orchestrator.domain.attempt import AttemptState, Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import NodeNotConnected, OriginateRequest
from orchestrator.domain.outcome import REASON_FAILURE
from orchestrator.domain.pacing import NodeLoad, NodePacer, PacerSettings, TokenBucket, plan_nodes, total_room
from orchestrator.domain.ports import DialNode, DispatchRepository, EventSink, NodeConnector, Unsent
from orchestrator.domain.records import Claim, NodeRow, StoredStatus
from orchestrator.domain.retry import RetryPolicy
from orchestrator.services.batches import OrderedBatches
from orchestrator.services.outbox import EventOutbox, HeldBatch
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)

HEARTBEAT_S = 2.0
ORPHAN_AFTER_S = 8.0
"""A dispatcher silent this long is taken for dead: its live attempts are adopted."""
ADOPT_EVERY_S = 3.0
EXPIRE_EVERY_S = 2.0
OUTBOX_CHECK_S = 2.0
FOLD_COUNTS_EVERY_S = 60.0
"""The status-count deltas (a few rows per status write) are folded this often."""
RENDER_SWEEP_S = 10.0
"""How often, and after how long, pending prompts are checked for a lost job."""
RECONCILE_MIN_AGE_S = 5.0
"""Younger attempts may not have a channel yet (Originate in flight)."""
RING_END_MARGIN_S = 5.0
"""A lost node's unanswered call is retried no sooner than its ring timeout plus this."""
CHANNEL_EXPECTED_AFTER_S = 3.0
"""A canceled attempt with no channel seen this long after its Originate is hung up by its id."""
STRAY_AFTER_S = 10.0
"""An attempt of ours still not marked sent this long after its claim was never followed: a
claim marks its attempts within milliseconds, or fails and keeps them in `_unsent`."""
APPLY_GATHER_S = 0.05
"""Transitions wait this long to be stored together: at a few hundred calls a second, one
transaction per transition or two cost more than all the statements in it."""
SEND_GROUPS = 4
"""A poll's claims go to Asterisk in this many groups, spread over the poll."""
SEND_SPREAD = 0.75
"""The groups' sends span this share of the poll interval, so the last group is out well before
the next poll plans from the pacers' budgets."""
REFUSED_FOR_AT_MOST_S = 75.0
"""A call the nodes have refused to make a channel for since this long ends `failed`: longer
than a qualify period (60 s) and a node's longest hold (8 s), so a carrier that answers again
is back in use first."""
REFUSED_REASON = (
    f"no node would place it for {REFUSED_FOR_AT_MOST_S:.0f} s (no channel, nothing dialed): "
    "is its trunk reachable?"
)
REFUSED_TRACKED_MAX = 100_000
PING_TIMEOUT_S = 1.5
PING_FAILURES_DOWN = 2
"""Two missed pings a second apart: a hung node is out of the plan within about 3 s."""

# AMI fields worth keeping in call_events; the rest is noise for people reading a call's story.
_EVENT_FIELDS = (
    "Channel",
    "ChannelName",
    "TechCause",
    "ChannelState",
    "ChannelStateDesc",
    "DialStatus",
    "Cause",
    "Cause-txt",
    "UserEvent",
    "Status",
    "Reason",
    "Response",
)


@dataclass(frozen=True)
class DispatchSettings:
    poll_s: float
    batch: int
    cps: float
    max_call_s: int
    finalize_grace_s: float
    originate_failure_wait_s: float
    events_flush_s: float
    events_batch_max: int
    node_lost_after_s: float = 10.0
    """A node silent this long, with its AMI and HTTP ports both dead, has lost its calls."""
    pacer: PacerSettings = PacerSettings()
    """How each node's own pace adapts to its Originate latency (AIMD)."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> datetime:
    return datetime.now(UTC)


def event_uids() -> Iterator[str]:
    """Unique ids for the events this process records, in UUID form (version 4 bits set): a
    random 72-bit prefix per process, then a counter. uuid4() per event reads the OS's random
    source each time, a measurable share of the dispatcher at a few thousand events a second."""
    prefix = uuid.uuid4().hex
    head = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-8{prefix[17:20]}-"
    for n in itertools.count():
        yield f"{head}{n:012x}"


class Dispatcher:
    def __init__(
        self,
        store: DispatchRepository,
        connect_node: NodeConnector,
        sink: EventSink,
        settings: DispatchSettings,
        node_reachable: Callable[[NodeRow], Awaitable[bool]],
    ) -> None:
        self._store = store
        self._connect_node = connect_node
        self._sink = sink
        self._settings = settings
        self._node_reachable = node_reachable
        self._nodes: dict[str, DialNode] = {}
        self._node_rows: dict[str, NodeRow] = {}
        self._attempts: dict[str, AttemptState] = {}
        self._started: dict[str, tuple[float, int]] = {}  # attempt -> (monotonic start, ring s)
        self._hangups_sent: set[str] = set()
        self._transitions: OrderedBatches[Transition] = OrderedBatches(limit=500)
        self._events: list[dict[str, Any]] = []
        self._event_uids = event_uids()
        self._unsent: dict[UUID, Unsent] = {}
        """Attempts known never dialed (a mark that failed, a node that made no channel): to
        requeue, each with why."""
        self._refused: dict[UUID, tuple[int, float]] = {}
        """Calls a node refused to make a channel for (nothing dialed): how many times, and since
        when (monotonic)."""
        self._bucket = TokenBucket(settings.cps, now=time.monotonic())
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._ping_failures: dict[str, int] = {}
        self._outbox = EventOutbox()
        self._silent_since: dict[str, float] = {}
        self._declared_lost: set[str] = set()
        self._pacers: dict[str, NodePacer] = {}
        self._unacked: dict[str, tuple[str, float]] = {}
        """Originates sent with no sign from the node yet: attempt → (node, monotonic sent)."""
        self._reconciling: set[str] = set()
        self._boots: dict[str, str] = {}  # node → its start time, as last seen
        self._reconcile_again: set[str] = set()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self._heartbeat()
        await self._refresh_nodes()
        await self._adopt_orphans()
        loops = [
            self._every(HEARTBEAT_S, self._heartbeat),
            self._every(ADOPT_EVERY_S, self._adopt_orphans),
            self._every(self._settings.poll_s, self._claim_and_dial, from_start=True),
            self._apply_loop(),
            self._every(self._settings.events_flush_s, self._flush_events),
            self._every(0.5, self._hang_up_canceled),
            self._every(2.0, self._refresh_nodes),
            self._every(1.0, self._check_nodes),
            self._every(2.0, self._sweep_overdue),
            self._every(2.0, self._requeue_own_unsent),
            self._every(RENDER_SWEEP_S, self._sweep_lost_renders),
            self._every(EXPIRE_EVERY_S, self._expire_due),
            self._every(OUTBOX_CHECK_S, self._resend_lost_batches),
            self._every(FOLD_COUNTS_EVERY_S, self._store.fold_status_counts),
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            await self._store_what_is_left()
            if self._unsent:
                try:  # claims a stop kept from being sent; else the next dispatcher's adoption does it
                    await self._requeue_own_unsent()
                except Exception:
                    log.exception("dispatcher.requeue_failed", count=len(self._unsent), stopping=True)
            await self._flush_events()
            # Batches waiting out a failure go now: a stop must not wait a minute for them.
            for held in self._outbox.due(float("inf")):
                await self._send_batch(held)
            await self._store.retire()
            for node in self._nodes.values():
                node.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _every(self, interval: float, step: Any, *, from_start: bool = False) -> None:
        await every(
            interval,
            step,
            self._stopping,
            failure_event="dispatcher.step_failed",
            from_start=from_start,
            step=step.__name__,
        )

    # ---- nodes ------------------------------------------------------------------------------

    async def _refresh_nodes(self) -> None:
        rows = {row.name: row for row in await self._store.nodes()}
        for name in set(self._nodes) - set(rows):
            self._nodes.pop(name).close()
            self._pacers.pop(name, None)
        for name, row in rows.items():
            old = self._node_rows.get(name)
            if name in self._nodes and old is not None and old.connection != row.connection:
                self._nodes.pop(name).close()
            if name not in self._nodes:
                node = self._connect_node(row, self._on_node_event, self._on_node_state)
                node.connect()
                self._nodes[name] = node
                self._pacers[name] = NodePacer(self._settings.pacer, now=time.monotonic())
        self._node_rows = rows
        now = time.monotonic()
        for name, node in self._nodes.items():
            pace = self._pacers[name].state(now)
            await self._store.mark_node(name, up=self._usable(name), version=node.version, pace_cps=pace.rate)
            log.info(
                "dispatch.pace",
                node=name,
                cps=round(pace.rate, 1),
                outstanding=pace.outstanding,
                latency_ms=round(pace.latency_s * 1e3, 1),
                base_ms=round(pace.base_latency_s * 1e3, 1),
                decreases=pace.decreases,
                refusals=pace.refusals,
            )

    def _usable(self, name: str) -> bool:
        """Logged in and answering pings: a node that hangs keeps its TCP session open."""
        node = self._nodes.get(name)
        return node is not None and node.up and self._ping_failures.get(name, 0) < PING_FAILURES_DOWN

    async def _check_nodes(self) -> None:
        async def check(name: str, node: DialNode) -> None:
            was_usable = self._usable(name)
            answered = node.up and await node.ping(timeout=PING_TIMEOUT_S)
            self._ping_failures[name] = 0 if answered else self._ping_failures.get(name, 0) + 1
            usable = self._usable(name)
            if usable != was_usable:
                log.warning("dispatch.node_state", node=name, usable=usable)
                await self._store.mark_node(name, up=usable, version=node.version)
                if usable and node.up:
                    # Back after a silence with the session still open: events sent meanwhile
                    # may be lost, so check the node's channels as after a reconnect.
                    self._spawn(self._reconcile(name))
            if usable:
                self._silent_since.pop(name, None)
                self._declared_lost.discard(name)
                return
            silent_for = time.monotonic() - self._silent_since.setdefault(name, time.monotonic())
            if silent_for > self._settings.node_lost_after_s and name not in self._declared_lost:
                row = self._node_rows.get(name)
                # The dialing link is silent but one of the node's ports still answers: only a
                # link is cut, the calls go on; they are reconciled when the link comes back.
                if row is None or not await self._node_reachable(row):
                    self._declared_lost.add(name)
                    self._fail_node_attempts(name, f"node {name} lost: no answer for {silent_for:.0f} s")

        await asyncio.gather(*(check(name, node) for name, node in list(self._nodes.items())))

    def _fail_node_attempts(self, name: str, reason: str) -> None:
        now, now_mono = _now(), time.monotonic()
        lost = [(key, state) for key, state in self._attempts.items() if state.node == name]
        log.error("dispatch.node_lost", node=name, live_calls=len(lost), reason=reason)
        for key, state in lost:
            # Silent and unreachable is not proof of death: its unanswered calls may still ring.
            started, ring_s = self._started.get(key, (now_mono, 0))
            ring_end = now + timedelta(seconds=started - now_mono + ring_s + RING_END_MARGIN_S)
            self._push(state.on_lost(reason, now, may_ring_until=ring_end))

    def _check_restart(self, name: str) -> None:
        """A node back with another start time restarted: the calls this dispatcher sent it
        went with the old process, however they looked last (a CDR is never written for them)."""
        node = self._nodes.get(name)
        boot = node.boot_id if node is not None else None
        if boot is None:
            return
        before = self._boots.get(name)
        self._boots[name] = boot
        if before is None or before == boot:
            return
        now = _now()
        cut = [state for state in self._attempts.values() if state.node == name]
        log.error("dispatch.node_restarted", node=name, live_calls=len(cut))
        for state in cut:
            self._push(state.on_lost(f"node {name} restarted while the call was live", now))

    async def _reconcile(self, name: str) -> None:
        """After (re)connecting: attempts this dispatcher follows on the node whose channel is
        gone ended while nobody listened. Settle them instead of waiting for their bounds."""
        node = self._nodes.get(name)
        if node is None:
            return
        if name in self._reconciling:
            # A pass is under way, but its channel list may predate this (re)connection: one
            # more pass follows it.
            self._reconcile_again.add(name)
            return
        self._reconciling.add(name)
        try:
            await self._reconcile_now(name, node)
            while name in self._reconcile_again and not self._stopping.is_set():
                self._reconcile_again.discard(name)
                await self._reconcile_now(name, node)
        finally:
            self._reconciling.discard(name)
            self._reconcile_again.discard(name)

    async def _reconcile_after(self, name: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        while name in self._reconciling and not self._stopping.is_set():
            await asyncio.sleep(0.5)  # the pass under way started too early for these
        await self._reconcile(name)

    async def _reconcile_adopted(self, name: str, young_for_s: float) -> None:
        """Adopted attempts may have ended while no dispatcher listened: check them against the
        node once it is logged in (at start-up it is not yet), and once more when the youngest
        are old enough to have a channel (their Originates may have been in flight)."""
        old_enough_at = time.monotonic() + young_for_s
        while not self._stopping.is_set():
            node = self._nodes.get(name)
            if node is None:
                return  # the node was removed: its attempts run out their bounds
            if node.up:
                break
            await asyncio.sleep(0.5)
        await self._reconcile_after(name, 0)
        if old_enough_at > time.monotonic():
            await self._reconcile_after(name, old_enough_at - time.monotonic())

    async def _reconcile_now(self, name: str, node: DialNode) -> None:
        await asyncio.sleep(1.0)
        listed_at = time.monotonic()  # ages count to here: the list shows channels as they were
        try:
            present = await node.channel_ids()
        except Exception as exc:
            log.warning("dispatch.reconcile_failed", node=name, error=str(exc))
            return
        await asyncio.sleep(2.0)  # a Hangup already on its way still wins
        keys = [
            key
            for key, state in list(self._attempts.items())
            if state.node == name
            and listed_at - self._started.get(key, (listed_at, 0))[0] >= RECONCILE_MIN_AGE_S
        ]
        settled = await self._settle_from(name, keys, present)
        log.info("dispatch.reconciled", node=name, channels=len(present), settled=settled)

    async def _settle_unconfirmed(self, name: str, key: str) -> None:
        """One attempt whose Originate got no reply (the link failed, or the wait ran out): once
        the node answers, its channel list says whether the call is still up or gone."""
        await asyncio.sleep(2.0)  # a Hangup, or the CDR, already on its way still wins
        while key in self._attempts and not self._stopping.is_set():
            node = self._nodes.get(name)
            if node is not None and self._usable(name):
                try:
                    present = await node.channel_ids()
                except Exception as exc:
                    log.warning("dispatch.reconcile_failed", node=name, error=str(exc))
                else:
                    await self._settle_from(name, [key], present)
                    return
            await asyncio.sleep(1.0)

    async def _settle_from(self, name: str, keys: list[str], present: dict[str, str]) -> int:
        """These attempts against the node's channel list: a channel still up catches up on what
        was missed (e.g. the answer); one gone ended unseen, and the node's CDR says how, when
        it wrote one. Returns how many were gone."""
        gone: list[str] = []
        for key in keys:
            state = self._attempts.get(key)
            if state is None:
                continue
            if key in present:
                self._push(state.on_event("Newstate", {"ChannelStateDesc": present[key]}, _now()))
            else:
                gone.append(key)
        await self._settle_gone(name, gone)
        return len(gone)

    async def _settle_gone(self, name: str, keys: list[str]) -> None:
        if not keys:
            return
        try:
            dispositions = await self._store.cdr_dispositions(keys)
        except Exception as exc:
            log.warning("dispatch.cdr_lookup_failed", node=name, error=str(exc))
            dispositions = {}
        reason = f"channel gone when node {name} was next seen"
        for key in keys:
            state = self._attempts.get(key)
            if state is not None:
                self._push(state.on_ended_unseen(dispositions.get(key), reason, _now()))

    def _on_node_state(self, name: str, up: bool) -> None:
        if not up:
            self._forget_unacked(name)
        if up:
            self._check_restart(name)
            self._spawn(self._reconcile(name))
        if name in self._nodes:
            self._spawn(self._store.mark_node(name, up=up, version=self._nodes[name].version))

    def _loads(self, now: float) -> list[NodeLoad]:
        live: dict[str, int] = {}
        for state in self._attempts.values():
            live[state.node] = live.get(state.node, 0) + 1
        return [
            NodeLoad(
                name,
                live.get(name, 0),
                row.max_channels,
                self._usable(name),
                row.drained,
                allowance=self._pacers[name].allowance(now),
            )
            for name, row in self._node_rows.items()
            if name in self._nodes
        ]

    # ---- pacing: each node's Originate latency sets its pace ---------------------------------

    def _acknowledged(self, key: str) -> None:
        """The node's first sign of an Originate (its channel exists, or it answered the action):
        the time it took is the node's load signal, ring time excluded."""
        sent = self._unacked.pop(key, None)
        if sent is not None and sent[0] in self._pacers:
            now = time.monotonic()
            self._pacers[sent[0]].on_response(now - sent[1], now)

    def _unacknowledged(self, key: str) -> None:
        sent = self._unacked.pop(key, None)
        if sent is not None and sent[0] in self._pacers:
            self._pacers[sent[0]].on_lost(time.monotonic())

    def _forget_unacked(self, name: str) -> None:
        """The link dropped: Originates in flight on it will never be acknowledged."""
        for key in [k for k, (node, _) in self._unacked.items() if node == name]:
            self._unacknowledged(key)

    # ---- claiming and dialing ---------------------------------------------------------------

    async def _claim_and_dial(self) -> None:
        now = time.monotonic()
        loads = self._loads(now)
        wanted = min(self._settings.batch, self._bucket.available(now), total_room(loads))
        if wanted <= 0:
            return
        plan = plan_nodes(loads, wanted)
        claims = await self._store.claim(plan)
        if not claims:
            return
        self._bucket.take(len(claims), time.monotonic())
        # Asterisk queues what it is sent at once: a poll's claims sent together make the last of
        # them wait for the rest (about 0.2 s for 24 at 120 calls/s). They go in a few groups
        # spread over the poll instead, as a steady stream.
        groups = min(SEND_GROUPS, len(claims))
        spacing_s = self._settings.poll_s * SEND_SPREAD / groups
        started = time.monotonic()
        for n in range(groups):
            group = claims[n::groups]
            if n:
                await asyncio.sleep(max(0.0, started + n * spacing_s - time.monotonic()))
            if self._stopping.is_set():
                # Never marked sent: known unsent, back to the queue.
                self._unsent.update(dict.fromkeys((c.attempt_id for c in group), Unsent.NOT_SENT))
                continue
            await self._send_group(group)

    async def _send_group(self, claims: list[Claim]) -> None:
        # Marked "sent" in one statement just before the Originates go: if this process dies
        # first, the dispatcher that adopts these attempts knows they were never dialed.
        try:
            marked = await self._store.mark_sending([c.attempt_id for c in claims])
        except Exception:
            log.exception("dispatch.mark_sending_failed", count=len(claims))
            self._unsent.update(dict.fromkeys((c.attempt_id for c in claims), Unsent.NOT_SENT))
            return
        self._note_requeued(list(marked.requeued))
        mine = marked.sent
        now = time.monotonic()
        sent_at = _now().isoformat()
        for claim in claims:
            if claim.attempt_id not in mine:
                continue
            key = str(claim.attempt_id)
            if claim.node in self._pacers:
                self._pacers[claim.node].on_sent(1, now)
                self._unacked[key] = (claim.node, now)
            self._attempts[key] = AttemptState(
                claim.attempt_id, claim.call_id, claim.node, number=claim.attempt_number, retry=claim.retry
            )
            self._started[key] = (now, claim.ring_timeout_s)
            self._record(
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
            self._spawn(self._originate(claim))

    async def _originate(self, claim: Claim) -> None:
        key = str(claim.attempt_id)
        state = self._attempts.get(key)
        if state is None:
            return
        bound = log.bind(call_id=str(claim.call_id), attempt_id=key, node=claim.node)
        node = self._nodes.get(claim.node)
        request = OriginateRequest(
            attempt_id=key,
            to=claim.to,
            trunk=claim.trunk,
            caller_id=claim.from_,
            audio_path=claim.audio_path,
            call_id=str(claim.call_id),
            timeout_ms=claim.ring_timeout_s * 1000,
            max_call_s=self._settings.max_call_s,
        )
        if node is None:
            self._push(state.on_lost(f"node {claim.node} vanished before dialing", _now()))
            return
        bound.info("dispatch.originate", to=claim.to, trunk=claim.trunk)
        try:
            outcome = await node.originate(request, wait_s=claim.ring_timeout_s + 15)
        except NodeNotConnected as exc:
            # Refused before anything left: never dialed, so back to the queue, not failed.
            bound.warning("dispatch.originate_not_sent", error=str(exc))
            self._unacknowledged(key)
            self._attempts.pop(key, None)
            self._started.pop(key, None)
            self._unsent[claim.attempt_id] = Unsent.NOT_SENT
            return
        except Exception as exc:
            self._unacknowledged(key)
            bound.warning("dispatch.originate_error", error=str(exc))
            self._record(claim.call_id, claim.attempt_id, _now(), "dispatch.error", {"error": str(exc)})
            # No reply is not no call: the Originate may have reached the node before the link
            # failed, and the call may be ringing, answered or over. Ask the node (channels,
            # then CDR) once it answers, rather than guess.
            self._spawn(self._settle_unconfirmed(claim.node, key))
            return
        self._acknowledged(key)
        at = _now()
        self._record(
            claim.call_id,
            claim.attempt_id,
            at,
            f"{node.driver}.OriginateResponse",
            {
                "Response": "Success" if outcome.success else "Failure",
                "Reason": str(outcome.reason),
                **({"Message": outcome.message} if outcome.message else {}),
            },
        )
        if outcome.success:
            self._push(state.on_originate_response(True, outcome.reason, at))
            return
        # The Hangup that usually follows carries the real cause; give it a moment to arrive.
        await asyncio.sleep(self._settings.originate_failure_wait_s)
        if outcome.reason == REASON_FAILURE and not state.channel_made and not state.ended:
            refusals, since = self._refused.get(claim.call_id, (0, time.monotonic()))
            if not state.cancel_requested and time.monotonic() - since < REFUSED_FOR_AT_MOST_S:
                self._requeue_refused(claim, refusals + 1, since, bound)
                return
            self._refused.pop(claim.call_id, None)
            if not state.cancel_requested:  # a cancel ends it canceled, below
                self._push(state.on_lost(REFUSED_REASON, _now()))
                return
        self._push(state.on_originate_failed(outcome.reason, _now()))

    def _requeue_refused(self, claim: Claim, refusals: int, since: float, bound: Any) -> None:
        """The node made no channel at all (no event for it, no Hangup): nothing was dialed, so
        the call goes back to the queue, not to `failed`, and the node is held back a while. A
        PJSIP node does this for every call to a trunk whose one qualify went unanswered (its
        carrier was busy for a moment), until the next qualify, up to a minute later."""
        key = str(claim.attempt_id)
        bound.warning("dispatch.originate_refused", refusals=refusals, note="queued again, nothing dialed")
        refused = {"node": claim.node, "refusals": refusals}
        self._record(claim.call_id, claim.attempt_id, _now(), "dispatch.refused", refused)
        self._refused[claim.call_id] = (refusals, since)
        if len(self._refused) > REFUSED_TRACKED_MAX:  # calls canceled or expired while queued
            del self._refused[next(iter(self._refused))]
        if claim.node in self._pacers:
            self._pacers[claim.node].on_refused(time.monotonic())
        self._attempts.pop(key, None)
        self._started.pop(key, None)
        self._unsent[claim.attempt_id] = Unsent.REFUSED

    # ---- events from Asterisk ---------------------------------------------------------------

    def _on_node_event(self, node: str, name: str, fields: dict[str, str]) -> None:
        key = fields.get("Uniqueid", "")
        state = self._attempts.get(key)
        if state is None:
            # AMI's Dial events of an originated channel name it only as the destination: an
            # Originate has no calling channel.
            key = fields.get("DestUniqueid", "")
            state = self._attempts.get(key)
            if state is None:
                return
        if key in self._unacked:
            self._acknowledged(key)
        if not state.channel_made:
            state.channel_made = True
            self._refused.pop(state.call_id, None)
            if node in self._pacers:
                self._pacers[node].on_channel()
        at = _now()
        self._record(
            state.call_id,
            state.attempt_id,
            at,
            f"{self._driver_of(node)}.{name}",
            {k: fields[k] for k in _EVENT_FIELDS if k in fields} | {"node": node},
        )
        self._push(state.on_event(name, fields, at))

    def _driver_of(self, name: str) -> str:
        node = self._nodes.get(name)
        return node.driver if node is not None else "ami"

    def _push(self, transition: Transition | None) -> None:
        if transition is not None:
            self._transitions.put(transition)

    async def _apply_loop(self) -> None:
        while not self._stopping.is_set():
            # Gathered: each store is a transaction, whatever its size.
            batch = await self._transitions.take(wait_s=0.5, gather_s=APPLY_GATHER_S)
            if not batch:
                continue
            try:
                outcomes = await self._store.apply(batch)
            except Exception:
                log.exception("dispatcher.apply_failed", count=len(batch))
                self._transitions.put_back(batch)  # first next turn: a call's statuses stay in order
                await asyncio.sleep(1.0)
                continue
            for transition, stored in zip(batch, outcomes):
                self._after_transition(transition, stored)

    async def _store_what_is_left(self) -> None:
        """At a clean stop: the transitions still queued are stored now, not left for the next
        dispatcher to work out again from the nodes (which a CDR-less end cannot always tell)."""
        left = self._transitions.drain()
        for start in range(0, len(left), 500):
            batch = left[start : start + 500]
            try:
                outcomes = await self._store.apply(batch)
            except Exception:
                log.exception("dispatcher.apply_failed", count=len(batch), stopping=True)
                return
            for transition, stored in zip(batch, outcomes):
                self._after_transition(transition, stored)

    def _after_transition(self, t: Transition, stored: StoredStatus | None) -> None:
        key = str(t.attempt_id)
        if stored is not None:  # its `status` event was stored with it
            log.info("call.status", call_id=str(t.call_id), attempt_id=key, status=stored.status.value)
        if t.status.is_final:
            self._unacknowledged(key)
            self._attempts.pop(key, None)
            self._started.pop(key, None)
            self._hangups_sent.discard(key)

    # ---- cancels, overdue attempts, restarts --------------------------------------------------

    async def _hang_up_canceled(self) -> None:
        wanted = set(await self._store.cancel_requests())
        now = time.monotonic()
        hangups = []
        for key, state in list(self._attempts.items()):
            if state.call_id not in wanted:
                continue
            state.cancel_requested = True
            if key in self._hangups_sent:
                continue
            # The channel's id is the attempt's: it can be hung up even if its first event was
            # missed (a link that dropped just then), once its Originate has had time to land.
            started = self._started.get(key, (now, 0))[0]
            if state.channel is None and now - started < CHANNEL_EXPECTED_AFTER_S:
                continue
            node = self._nodes.get(state.node)
            if node is None or not node.up:
                continue
            self._hangups_sent.add(key)
            hangups.append(self._hang_up(node, key, state))
        # At once, each bounded: one node that does not answer holds back no other cancel.
        await asyncio.gather(*hangups)

    async def _hang_up(self, node: DialNode, key: str, state: AttemptState) -> None:
        bound = log.bind(call_id=str(state.call_id), attempt_id=key, node=state.node)
        bound.info("dispatch.cancel_hangup")
        try:
            await node.hangup(state.channel or key)
        except Exception as exc:
            self._hangups_sent.discard(key)
            bound.warning("dispatch.hangup_failed", error=str(exc))

    async def _sweep_overdue(self) -> None:
        """No attempt stays live past ring timeout + max call length + grace."""
        now = time.monotonic()
        for key, (started, ring_s) in list(self._started.items()):
            state = self._attempts.get(key)
            if state is None:
                continue
            limit = ring_s + self._settings.max_call_s + self._settings.finalize_grace_s
            if now - started > limit:
                log.warning("dispatch.overdue", call_id=str(state.call_id), attempt_id=key)
                self._push(state.on_lost(f"no final event within {limit:.0f} s", _now()))

    async def _expire_due(self) -> None:
        expired = await self._store.expire_due()
        if expired:
            log.info("dispatch.expired", count=expired)

    async def _sweep_lost_renders(self) -> None:
        """PostgreSQL says which prompts are wanted; Redis only carries the jobs. A job lost with
        a flushed Redis or a killed worker is enqueued again, so no call waits forever."""
        stale = await self._store.stale_renders(RENDER_SWEEP_S)
        if stale:
            lost = await asyncio.to_thread(self._sink.requeue_lost_renders, stale)
            if lost:
                log.warning("dispatch.renders_requeued", count=lost)

    async def _heartbeat(self) -> None:
        await self._store.heartbeat(socket.gethostname(), os.getpid())

    async def _adopt_orphans(self) -> None:
        """Follow the attempts of a dispatcher that stopped (its heartbeat is stale), then check
        them against what their nodes really have."""
        # A dispatcher of this machine whose process is gone (SIGKILL, crash) need not be waited
        # for: its heartbeat would take ORPHAN_AFTER_S to go stale.
        dead_here = [
            ident
            for ident, pid in await self._store.dispatchers_on(socket.gethostname())
            if not _process_alive(pid)
        ]
        adopted = await self._store.adopt_orphans(ORPHAN_AFTER_S, dead_here)
        # Claimed by the dead dispatcher but never sent: back to the queue (below), not followed.
        unsent = [row["id"] for row in adopted if not row["originate_sent"]]
        adopted = [row for row in adopted if row["originate_sent"]]
        youngest: dict[str, float] = {}  # per node: its youngest adopted attempt's age, s
        for row in adopted:
            key = str(row["id"])
            self._attempts[key] = AttemptState(
                row["id"],
                row["call_id"],
                row["node"],
                status=CallStatus(row["status"]),
                channel=row["channel"],
                answered=bool(row["answered"]),
                cancel_requested=bool(row["cancel_requested"]),
                far_end_responded=row["status"] in ("ringing", "in-progress"),
                number=int(row["number"]),
                retry=RetryPolicy.from_row(row),
            )
            age = (_now() - row["started_at"]).total_seconds()
            self._started[key] = (time.monotonic() - age, int(row["ring_timeout_s"]))
            youngest[str(row["node"])] = min(age, youngest.get(str(row["node"]), age))
        if adopted:
            log.warning("dispatch.adopted", count=len(adopted))
            for name, age in youngest.items():
                self._spawn(self._reconcile_adopted(name, RECONCILE_MIN_AGE_S - age + 1.0))
        if unsent:
            # Ours now, so the periodic retry may requeue them if this fails: they are known unsent.
            self._unsent.update(dict.fromkeys(unsent, Unsent.NOT_SENT))
            await self._requeue_own_unsent()

    async def _requeue_own_unsent(self) -> None:
        """Attempts this dispatcher owns and knows were never sent (its own claims whose "sent"
        mark failed, whether or not it reached the database; adopted ones never marked): back
        to the queue. Retried every few seconds until it succeeds. Then any it owns but does not
        know of (a claim that raised after its COMMIT landed)."""
        for why in Unsent:
            ids = [attempt for attempt, reason in self._unsent.items() if reason is why]
            if ids:
                self._note_requeued(await self._store.requeue_unsent(ids, why))
                for attempt in ids:
                    self._unsent.pop(attempt, None)
        self._note_requeued(await self._store.requeue_stray(STRAY_AFTER_S))

    def _note_requeued(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            status = str(row["status"])
            log.warning(
                "dispatch.requeued_unsent",
                call_id=str(row["call_id"]),
                attempt_id=str(row["attempt_id"]),
                status=status,
            )
            at = _now()
            self._record(row["call_id"], row["attempt_id"], at, "dispatch.not_sent", {"status": status})
            self._record(row["call_id"], None, at + timedelta(microseconds=1), "status", {"status": status})

    # ---- event recording ----------------------------------------------------------------------

    def _record(
        self, call_id: UUID, attempt_id: UUID | None, at: datetime, type_: str, data: dict[str, Any]
    ) -> None:
        self._events.append(
            {
                # Objects, not strings: the batch is pickled to the worker, whose COPY takes them.
                "uid": next(self._event_uids),
                "call_id": call_id,
                "attempt_id": attempt_id,
                "at": at,
                "type": type_,
                "data": data,
            }
        )

    async def _flush_events(self) -> None:
        """The events recorded before this flush began, in batches of at most events_batch_max.
        Those recorded while it sends wait for the next flush: draining until none are left made
        a busy dispatcher chase its own stream, sending a job of a few dozen events every few
        milliseconds (dozens of RQ jobs a second, each costing as much as a full one)."""
        left = len(self._events)
        while left:
            batch = self._events[: min(left, self._settings.events_batch_max)]
            await self._send_batch(HeldBatch(batch))
            del self._events[: len(batch)]  # after the send: a stop mid-send keeps them
            left -= len(batch)

    async def _send_batch(self, held: HeldBatch) -> None:
        """To a worker through Redis; if Redis does not take it, stored here directly (the
        events must not pile up in this process's memory while Redis is down); if PostgreSQL
        refuses too, held and tried again later."""
        try:
            self._outbox.sent(await asyncio.to_thread(self._sink.enqueue_events, held.events), held)
            return
        except Exception as exc:
            log.warning("dispatch.events_queue_down", events=len(held.events), error=str(exc))
        try:
            await self._store.record_events(held.events)
        except Exception as exc:
            log.warning("dispatch.events_not_stored", events=len(held.events), error=str(exc))
            self._outbox.hold(held, time.monotonic())

    async def _resend_lost_batches(self) -> None:
        """Redis only carries the batches: one whose job vanished (a flushed Redis, a worker
        killed mid-job) or failed is sent again, later after each failure (EventOutbox). Event
        ids make a second recording a no-op."""
        # First the batches due again: they reach PostgreSQL even while Redis is down, when
        # the jobs in flight cannot be looked up.
        for waiting in self._outbox.due(time.monotonic()):
            await self._send_batch(waiting)
            log.info("dispatch.events_resent", events=len(waiting.events), failures=waiting.failures)
        for job_id in self._outbox.in_flight():
            state = await asyncio.to_thread(self._sink.batch_state, job_id)
            if state == "done":
                self._outbox.recorded(job_id)
            elif state == "lost":
                held = self._outbox.lost(job_id, time.monotonic())
                if held is not None:
                    log.warning(
                        "dispatch.events_lost",
                        events=len(held.events),
                        failures=held.failures,
                        resend_in_s=round(held.resend_at - time.monotonic(), 1),
                    )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
