"""The dispatcher: takes dialable calls off the queue, originates them on the farm, and follows
each attempt through Asterisk's events to a final status. This module wires its parts and runs
their periodic steps; each part is a module of this package."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.domain.events import ChannelEvent
from orchestrator.domain.facts import fact_of
from orchestrator.domain.ports import DispatchRepository, EventSink, NodeConnector
from orchestrator.domain.records import NodeRow
from orchestrator.services.dispatch.adoption import Adoption
from orchestrator.services.dispatch.cancels import CampaignCallCancelStore, CampaignCancelSweep
from orchestrator.services.dispatch.clock import Clock, SystemClock
from orchestrator.services.dispatch.events import EventRecorder, node_event_data
from orchestrator.services.dispatch.health import NodeWatch
from orchestrator.services.dispatch.live import LiveAttempts
from orchestrator.services.dispatch.meter import DispatchMeter, NodeView, NoMeter
from orchestrator.services.dispatch.nodes import NodeHandles
from orchestrator.services.dispatch.reconcile import Reconciler
from orchestrator.services.dispatch.sending import Sender
from orchestrator.services.dispatch.settings import (
    ADOPT_EVERY_S,
    CAMPAIGN_CANCEL_BATCH,
    CAMPAIGN_CANCEL_SWEEP_S,
    CANCEL_CHECK_S,
    EXPIRE_EVERY_S,
    FOLD_COUNTS_EVERY_S,
    HEARTBEAT_S,
    NODES_CHECK_S,
    NODES_REFRESH_S,
    OUTBOX_CHECK_S,
    OVERDUE_SWEEP_S,
    RENDER_SWEEP_S,
    REQUEUE_EVERY_S,
    DispatchSettings,
)
from orchestrator.services.dispatch.sweeps import Sweeps
from orchestrator.services.dispatch.tasks import Background
from orchestrator.services.dispatch.transitions import Transitions
from orchestrator.services.dispatch.unsent import UnsentAttempts
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Loop:
    """A step run every `interval_s` until the stop."""

    name: str
    """As logged when the step fails (`step=`): the names operators' queries already know."""
    interval_s: float
    step: Callable[[], Awaitable[Any]]
    from_start: bool = False
    """The interval counts from the step's start (the step spreads its work over it)."""


class Dispatcher:
    def __init__(
        self,
        store: DispatchRepository,
        connect_node: NodeConnector,
        sink: EventSink,
        settings: DispatchSettings,
        node_reachable: Callable[[NodeRow], Awaitable[bool]],
        clock: Clock | None = None,
        *,
        cancels: CampaignCallCancelStore,
        meter: DispatchMeter | None = None,
    ) -> None:
        """`cancels`: where canceled campaigns' queued calls are canceled in the background."""
        self.clock = clock if clock is not None else SystemClock()
        self.meter: DispatchMeter = meter if meter is not None else NoMeter()
        self._store = store
        self._settings = settings
        self.background = Background()
        self.nodes = NodeHandles(
            lambda row: connect_node(row, self.on_node_event, self.on_node_state), settings.pacer, self.clock
        )
        self.live = LiveAttempts(self.nodes.pacer_of, self.clock, self.meter)
        self.transitions = Transitions(store, self.live, self.clock, self.background, self.meter)
        self.recorder = EventRecorder(sink, store.record_events, settings.events_batch_max, self.clock)
        self.unsent = UnsentAttempts(store, self.recorder, self.clock)
        self.reconciler = Reconciler(
            store, self.nodes, self.live, self.transitions, self.clock, self.background
        )
        self.watch = NodeWatch(
            store,
            self.nodes,
            self.live,
            self.transitions,
            self.reconciler,
            node_reachable,
            settings.node_lost_after_s,
            self.clock,
            self.background,
        )
        self.sender = Sender(
            store,
            settings,
            self.nodes,
            self.live,
            self.transitions,
            self.recorder,
            self.unsent,
            self.reconciler,
            self.clock,
            self.background,
        )
        self.sweeps = Sweeps(store, sink, settings, self.nodes, self.live, self.transitions, self.clock)
        self.campaign_cancels = CampaignCancelSweep(
            cancels, CAMPAIGN_CANCEL_BATCH, lambda: self.background.stopped
        )
        self.adoption = Adoption(store, self.live, self.unsent, self.reconciler, self.clock, self.background)

    def loops(self) -> list[Loop]:
        """Every periodic step, and how often it runs."""
        poll_s, flush_s = self._settings.poll_s, self._settings.events_flush_s
        return [
            Loop("_heartbeat", HEARTBEAT_S, self.adoption.heartbeat),
            Loop("_adopt_orphans", ADOPT_EVERY_S, self.adoption.adopt_orphans),
            Loop("_claim_and_dial", poll_s, self.sender.claim_and_dial, from_start=True),
            Loop("_flush_events", flush_s, self.recorder.flush),
            Loop("_hang_up_canceled", CANCEL_CHECK_S, self.sweeps.hang_up_canceled),
            Loop("_refresh_nodes", NODES_REFRESH_S, self.watch.refresh),
            Loop("_check_nodes", NODES_CHECK_S, self.watch.check),
            Loop("_sweep_overdue", OVERDUE_SWEEP_S, self.sweeps.fail_overdue),
            Loop("_requeue_own_unsent", REQUEUE_EVERY_S, self.unsent.requeue),
            Loop("_sweep_lost_renders", RENDER_SWEEP_S, self.sweeps.requeue_lost_renders),
            Loop("_expire_due", EXPIRE_EVERY_S, self.sweeps.expire_due),
            Loop("_cancel_campaign_calls", CAMPAIGN_CANCEL_SWEEP_S, self.campaign_cancels.step),
            Loop("_resend_lost_batches", OUTBOX_CHECK_S, self.recorder.resend_lost),
            Loop("fold_status_counts", FOLD_COUNTS_EVERY_S, self._store.fold_status_counts),
        ]

    def node_views(self) -> list[NodeView]:
        """Each node as this dispatcher sees it now (for the metrics scrape)."""
        live = self.live.per_node()
        return [
            NodeView(handle.name, handle.usable, live.get(handle.name, 0), handle.pacer.rate)
            for handle in self.nodes
        ]

    # ---- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self.adoption.heartbeat()
        await self.watch.refresh()
        await self.adoption.adopt_orphans()
        try:
            await asyncio.gather(self.transitions.run(), *(self._every(loop) for loop in self.loops()))
        finally:
            await self._finish()

    def stop(self) -> None:
        self.background.stop()

    async def _every(self, loop: Loop) -> None:
        await every(
            loop.interval_s,
            loop.step,
            self.background.stopping,
            failure_event="dispatcher.step_failed",
            from_start=loop.from_start,
            step=loop.name,
        )

    async def _finish(self) -> None:
        """At a stop: what is still held here is stored or handed on, not left to be guessed."""
        await self.transitions.store_what_is_left()
        if self.unsent:
            try:  # claims a stop kept from being sent; else the next dispatcher's adoption does it
                await self.unsent.requeue()
            except Exception:  # noqa: BLE001 - last resort at a stop: the flush and retire still follow
                log.exception("dispatcher.requeue_failed", count=len(self.unsent), stopping=True)
        await self.recorder.flush()
        await self.recorder.send_held()
        await self._store.retire()
        self.nodes.close()

    # ---- what the nodes' drivers report -------------------------------------------------------

    def on_node_event(self, node: str, event: ChannelEvent) -> None:
        """An event of one of the node's channels: told in the call's story, and fed to its
        attempt's state (events of channels that are not ours are ignored)."""
        state = self.live.get(event.attempt_id)
        if state is None:
            return
        self.live.acknowledged(event.attempt_id)
        if not state.channel_made:
            self.sender.channel_made(node, state)
        if event.recorded is not None:
            self.recorder.record(
                state.call_id,
                state.attempt_id,
                event.at,
                f"{self.nodes.driver_name(node)}.{event.recorded.name}",
                node_event_data(node, event.recorded.fields),
            )
        self.transitions.push(state.on_event(event))
        self.transitions.push(fact_of(state.attempt_id, state.call_id, event))

    def on_node_state(self, name: str, up: bool) -> None:
        self.watch.link_changed(name, up)
