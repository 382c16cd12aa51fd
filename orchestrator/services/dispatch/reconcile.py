"""Attempts checked against what their node really has, after a time nobody listened to it
(a reconnection, an adoption, an Originate that got no reply)."""

from __future__ import annotations

import structlog

from orchestrator.domain.dialing import NodeError
from orchestrator.domain.errors import StoreError
from orchestrator.domain.events import ChannelState
from orchestrator.domain.ports import DialNode, DispatchRepository
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.live import LiveAttempts
from orchestrator.services.dispatch.nodes import NodeHandles
from orchestrator.services.dispatch.settings import RECONCILE_MIN_AGE_S
from orchestrator.services.dispatch.tasks import Background
from orchestrator.services.dispatch.transitions import Transitions

log = structlog.get_logger(__name__)

LIST_AFTER_S = 1.0
"""A pass lists the node's channels this long after it starts: the node settles after a login."""
HANGUP_WINS_S = 2.0
"""What a node already sent (a Hangup, its CDR) has this long to arrive before a pass settles."""
RETRY_S = 0.5
"""How often a pass waiting for its node (or for the pass under way) looks again."""
UNCONFIRMED_RETRY_S = 1.0


class Reconciler:
    def __init__(
        self,
        store: DispatchRepository,
        nodes: NodeHandles,
        live: LiveAttempts,
        transitions: Transitions,
        clock: Clock,
        background: Background,
    ) -> None:
        self._store = store
        self._nodes = nodes
        self._live = live
        self._transitions = transitions
        self._clock = clock
        self._background = background
        self._reconciling: set[str] = set()
        self._again: set[str] = set()

    async def reconcile(self, name: str) -> None:
        """After (re)connecting: attempts this dispatcher follows on the node whose channel is
        gone ended while nobody listened. Settle them instead of waiting for their bounds."""
        handle = self._nodes.get(name)
        if handle is None:
            return
        if name in self._reconciling:
            # A pass is under way, but its channel list may predate this (re)connection: one
            # more pass follows it.
            self._again.add(name)
            return
        self._reconciling.add(name)
        try:
            await self._pass(name, handle.driver)
            while name in self._again and not self._background.stopped:
                self._again.discard(name)
                await self._pass(name, handle.driver)
        finally:
            self._reconciling.discard(name)
            self._again.discard(name)

    async def reconcile_adopted(self, name: str, young_for_s: float) -> None:
        """Adopted attempts may have ended while no dispatcher listened: check them against the
        node once it is logged in (at start-up it is not yet), and once more when the youngest
        are old enough to have a channel (their Originates may have been in flight)."""
        old_enough_at = self._clock.monotonic() + young_for_s
        while not self._background.stopped:
            handle = self._nodes.get(name)
            if handle is None:
                return  # the node was removed: its attempts run out their bounds
            if handle.driver.up:
                break
            await self._clock.sleep(RETRY_S)
        await self._reconcile_after(name, 0)
        if old_enough_at > self._clock.monotonic():
            await self._reconcile_after(name, old_enough_at - self._clock.monotonic())

    async def settle_unconfirmed(self, name: str, key: str) -> None:
        """One attempt whose Originate got no reply (the link failed, or the wait ran out): once
        the node answers, its channel list says whether the call is still up or gone."""
        await self._clock.sleep(HANGUP_WINS_S)  # a Hangup, or the CDR, already on its way still wins
        while key in self._live and not self._background.stopped:
            handle = self._nodes.get(name)
            if handle is not None and handle.usable:
                present = await self._channels(name, handle.driver)
                if present is not None:
                    await self._settle_from(name, [key], present)
                    return
            await self._clock.sleep(UNCONFIRMED_RETRY_S)

    async def _reconcile_after(self, name: str, delay_s: float) -> None:
        await self._clock.sleep(delay_s)
        while name in self._reconciling and not self._background.stopped:
            await self._clock.sleep(RETRY_S)  # the pass under way started too early for these
        await self.reconcile(name)

    async def _pass(self, name: str, node: DialNode) -> None:
        await self._clock.sleep(LIST_AFTER_S)
        listed_at = self._clock.monotonic()  # ages count to here: the list shows channels as they were
        present = await self._channels(name, node)
        if present is None:
            return
        await self._clock.sleep(HANGUP_WINS_S)  # a Hangup already on its way still wins
        keys = self._live.old_enough(name, listed_at, RECONCILE_MIN_AGE_S)
        settled = await self._settle_from(name, keys, present)
        log.info("dispatch.reconciled", node=name, channels=len(present), settled=settled)

    async def _channels(self, name: str, node: DialNode) -> dict[str, str] | None:
        """The node's channels (id → state), or None if it could not list them."""
        try:
            return await node.channel_ids()
        except NodeError as exc:
            log.warning("dispatch.reconcile_failed", node=name, error=str(exc))
            return None

    async def _settle_from(self, name: str, keys: list[str], present: dict[str, str]) -> int:
        """These attempts against the node's channel list: a channel still up catches up on what
        was missed (e.g. the answer); one gone ended unseen, and the node's CDR says how, when
        it wrote one. Returns how many were gone."""
        gone: list[str] = []
        for key in keys:
            state = self._live.get(key)
            if state is None:
                continue
            if key in present:
                listed = ChannelState(attempt_id=key, at=self._clock.now(), state=present[key])
                self._transitions.push(state.on_event(listed))
            else:
                gone.append(key)
        await self._settle_gone(name, gone)
        return len(gone)

    async def _settle_gone(self, name: str, keys: list[str]) -> None:
        if not keys:
            return
        try:
            dispositions = await self._store.cdr_dispositions(keys)
        except StoreError as exc:  # settled without the CDR's word
            log.warning("dispatch.cdr_lookup_failed", node=name, error=str(exc))
            dispositions = {}
        reason = f"channel gone when node {name} was next seen"
        for key in keys:
            state = self._live.get(key)
            if state is not None:
                self._transitions.push(
                    state.on_ended_unseen(dispositions.get(key), reason, self._clock.now())
                )
