"""Periodic checks that end what would otherwise wait for ever: canceled calls hung up, overdue
attempts failed, calls past their deadline expired, lost prompt renders enqueued again."""

from __future__ import annotations

import asyncio

import structlog

from orchestrator.domain.dialing import NodeError
from orchestrator.domain.ports import DialNode, DispatchRepository, EventSink
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.live import LiveAttempt, LiveAttempts
from orchestrator.services.dispatch.nodes import NodeHandles
from orchestrator.services.dispatch.settings import CHANNEL_EXPECTED_AFTER_S, RENDER_SWEEP_S, DispatchSettings
from orchestrator.services.dispatch.transitions import Transitions

log = structlog.get_logger(__name__)


class Sweeps:
    def __init__(
        self,
        store: DispatchRepository,
        sink: EventSink,
        settings: DispatchSettings,
        nodes: NodeHandles,
        live: LiveAttempts,
        transitions: Transitions,
        clock: Clock,
    ) -> None:
        self._store = store
        self._sink = sink
        self._settings = settings
        self._nodes = nodes
        self._live = live
        self._transitions = transitions
        self._clock = clock

    async def hang_up_canceled(self) -> None:
        """Live attempts whose call a cancel was asked for are hung up, once each."""
        wanted = set(await self._store.cancel_requests())
        now = self._clock.monotonic()
        hangups = []
        for live in self._live:
            if live.state.call_id not in wanted:
                continue
            live.state.cancel_requested = True
            node = self._hang_up_now(live, now)
            if node is not None:
                live.hangup_sent = True
                hangups.append(self._hang_up(node, live))
        # At once, each bounded: one node that does not answer holds back no other cancel.
        await asyncio.gather(*hangups)

    def _hang_up_now(self, live: LiveAttempt, now: float) -> DialNode | None:
        """The node to hang the attempt up on now, if it is time."""
        if live.hangup_sent:
            return None
        # The channel's id is the attempt's: it can be hung up even if its first event was
        # missed (a link that dropped just then), once its Originate has had time to land.
        if live.state.channel is None and now - live.started_at < CHANNEL_EXPECTED_AFTER_S:
            return None
        handle = self._nodes.get(live.node)
        if handle is None or not handle.driver.up:
            return None
        return handle.driver

    async def _hang_up(self, node: DialNode, live: LiveAttempt) -> None:
        state = live.state
        bound = log.bind(call_id=str(state.call_id), attempt_id=live.key, **live.log_fields())
        bound.info("dispatch.cancel_hangup")
        try:
            await node.hangup(state.channel or live.key)
        except NodeError as exc:
            live.hangup_sent = False
            bound.warning("dispatch.hangup_failed", error=str(exc))

    async def fail_overdue(self) -> None:
        """No attempt stays live past ring timeout + max call length + grace."""
        beyond_ring_s = self._settings.max_call_s + self._settings.finalize_grace_s
        for live, limit in self._live.overdue(self._clock.monotonic(), beyond_ring_s):
            log.warning(
                "dispatch.overdue", call_id=str(live.state.call_id), attempt_id=live.key, **live.log_fields()
            )
            self._transitions.push(
                live.state.on_lost(f"no final event within {limit:.0f} s", self._clock.now())
            )

    async def expire_due(self) -> None:
        expired = await self._store.expire_due()
        if expired:
            log.info("dispatch.expired", count=expired)

    async def requeue_lost_renders(self) -> None:
        """PostgreSQL says which prompts are wanted; Redis only carries the jobs. A job lost with
        a flushed Redis or a killed worker is enqueued again, so no call waits forever."""
        stale = await self._store.stale_renders(RENDER_SWEEP_S)
        if stale:
            lost = await asyncio.to_thread(self._sink.requeue_lost_renders, stale)
            if lost:
                log.warning("dispatch.renders_requeued", count=lost)
