"""Watching the nodes: their rows re-read, their pings, their links going and coming back, their
restarts, and the calls of a node lost for good."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from orchestrator.domain.ports import DispatchRepository
from orchestrator.domain.records import NodeRow
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.live import LiveAttempts
from orchestrator.services.dispatch.nodes import NodeHandle, NodeHandles, NodeHealth
from orchestrator.services.dispatch.reconcile import Reconciler
from orchestrator.services.dispatch.settings import PING_TIMEOUT_S, RING_END_MARGIN_S
from orchestrator.services.dispatch.tasks import Background
from orchestrator.services.dispatch.transitions import Transitions

log = structlog.get_logger(__name__)


class NodeWatch:
    def __init__(
        self,
        store: DispatchRepository,
        nodes: NodeHandles,
        live: LiveAttempts,
        transitions: Transitions,
        reconciler: Reconciler,
        reachable: Callable[[NodeRow], Awaitable[bool]],
        lost_after_s: float,
        clock: Clock,
        background: Background,
    ) -> None:
        self._store = store
        self._nodes = nodes
        self._live = live
        self._transitions = transitions
        self._reconciler = reconciler
        self._reachable = reachable
        self._lost_after_s = lost_after_s
        self._clock = clock
        self._background = background

    async def refresh(self) -> None:
        """The nodes table read again; each node's state and pace written back, and logged."""
        self._nodes.refresh(await self._store.nodes())
        now = self._clock.monotonic()
        for handle in self._nodes:
            pace = handle.pacer.state(now)
            await self._store.mark_node(
                handle.name, up=handle.usable, version=handle.driver.version, pace_cps=pace.rate
            )
            log.info(
                "dispatch.pace",
                node=handle.name,
                cps=round(pace.rate, 1),
                outstanding=pace.outstanding,
                latency_ms=round(pace.latency_s * 1e3, 1),
                base_ms=round(pace.base_latency_s * 1e3, 1),
                decreases=pace.decreases,
                refusals=pace.refusals,
            )

    async def check(self) -> None:
        """Every node pinged at once; one that stays silent too long has lost its calls."""
        await asyncio.gather(*(self._check(handle) for handle in self._nodes))

    def link_changed(self, name: str, up: bool) -> None:
        """A node's driver says its link went down or came back."""
        if not up:
            self._live.link_dropped(name)
        if up:
            self.check_restart(name)
            self._background.spawn(self._reconciler.reconcile(name))
        handle = self._nodes.get(name)
        if handle is not None:
            self._background.spawn(self._store.mark_node(name, up=up, version=handle.driver.version))

    def check_restart(self, name: str) -> None:
        """A node back with another start time restarted: the calls this dispatcher sent it
        went with the old process, however they looked last (a CDR is never written for them)."""
        handle = self._nodes.get(name)
        boot = handle.driver.boot_id if handle is not None else None
        if handle is None or boot is None:
            return
        before, handle.health.boot_id = handle.health.boot_id, boot
        if before is None or before == boot:
            return
        now = self._clock.now()
        cut = self._live.on_node(name)
        log.error("dispatch.node_restarted", node=name, live_calls=len(cut))
        for live in cut:
            self._transitions.push(live.state.on_lost(f"node {name} restarted while the call was live", now))

    async def _check(self, handle: NodeHandle) -> None:
        name, node = handle.name, handle.driver
        # Usable as the node's name now says: the node may be replaced during the ping.
        was_usable = self._nodes.usable(name)
        answered = node.up and await node.ping(timeout=PING_TIMEOUT_S)
        handle.health.ping_failures = 0 if answered else handle.health.ping_failures + 1
        usable = self._nodes.usable(name)
        if usable != was_usable:
            log.warning("dispatch.node_state", node=name, usable=usable)
            await self._store.mark_node(name, up=usable, version=node.version)
            if usable and node.up:
                # Back after a silence with the session still open: events sent meanwhile
                # may be lost, so check the node's channels as after a reconnect.
                self._background.spawn(self._reconciler.reconcile(name))
        if usable:
            handle.health.silent_since = None
            handle.health.declared_lost = False
            return
        await self._notice_silence(name, handle.health)

    async def _notice_silence(self, name: str, health: NodeHealth) -> None:
        now = self._clock.monotonic()
        if health.silent_since is None:
            health.silent_since = now
        silent_for = now - health.silent_since
        if silent_for <= self._lost_after_s or health.declared_lost:
            return
        # The dialing link is silent but one of the node's ports still answers: only a link is
        # cut, the calls go on; they are reconciled when the link comes back. A node removed
        # meanwhile is not asked.
        current = self._nodes.get(name)
        if current is None or not await self._reachable(current.row):
            health.declared_lost = True
            self._fail_attempts(name, f"node {name} lost: no answer for {silent_for:.0f} s")

    def _fail_attempts(self, name: str, reason: str) -> None:
        now, now_mono = self._clock.now(), self._clock.monotonic()
        lost = self._live.on_node(name)
        log.error("dispatch.node_lost", node=name, live_calls=len(lost), reason=reason)
        for live in lost:
            # Silent and unreachable is not proof of death: its unanswered calls may still ring.
            ring_end = now + timedelta(seconds=live.started_at - now_mono + live.ring_s + RING_END_MARGIN_S)
            self._transitions.push(live.state.on_lost(reason, now, may_ring_until=ring_end))
