"""Status transitions on their way to PostgreSQL: queued in order, stored in gathered batches,
and once stored, an attempt that ended is forgotten."""

from __future__ import annotations

from typing import Any

import structlog

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.facts import CallFact, Change
from orchestrator.domain.ports import DispatchRepository
from orchestrator.domain.records import StoredStatus
from orchestrator.services.batches import OrderedBatches
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.live import LiveAttempts
from orchestrator.services.dispatch.meter import DispatchMeter
from orchestrator.services.dispatch.settings import APPLY_BATCH_MAX, APPLY_GATHER_S
from orchestrator.services.dispatch.tasks import Background

log = structlog.get_logger(__name__)

RETRY_APPLY_AFTER_S = 1.0


class Transitions:
    def __init__(
        self,
        store: DispatchRepository,
        live: LiveAttempts,
        clock: Clock,
        background: Background,
        meter: DispatchMeter,
    ) -> None:
        self._store = store
        self._meter = meter
        self._live = live
        self._clock = clock
        self._background = background
        self._queue: OrderedBatches[Change] = OrderedBatches(limit=APPLY_BATCH_MAX)

    def push(self, transition: Change | None) -> None:
        """A state's answer to what happened (or a fact the call heard back): None when it
        changed nothing."""
        if transition is not None:
            self._measure(transition)
            self._queue.put(transition)

    def _measure(self, change: Change) -> None:
        """Timings are taken as things happen, not once stored (a batch waits its turn)."""
        if isinstance(change, CallFact):
            if change.digits:
                self._meter.digits(change.digits)
            if change.answered_by is not None:
                self._meter.answered_by(change.answered_by.value)
            return
        live = self._live.record(str(change.attempt_id))
        if live is None:
            return
        now = self._clock.monotonic()
        if change.status is CallStatus.IN_PROGRESS and live.answered_at is None:
            live.answered_at = now
            self._meter.answered(live.trunk, now - live.started_at)
        elif change.status.is_final:
            talk_s = now - live.answered_at if live.answered_at is not None else None
            self._meter.attempt_ended(live.trunk, live.node, change.status.value, talk_s)

    def __len__(self) -> int:
        return len(self._queue)

    def drain(self) -> list[Change]:
        """Everything queued, in order, taken out without storing it."""
        return self._queue.drain()

    async def run(self) -> None:
        """Until the stop: each batch gathered is stored in one transaction, whatever its size."""
        while not self._background.stopped:
            batch = await self._queue.take(wait_s=0.5, gather_s=APPLY_GATHER_S)
            if batch and not await self._store_batch(batch):
                self._queue.put_back(batch)  # first next turn: a call's statuses stay in order
                await self._clock.sleep(RETRY_APPLY_AFTER_S)

    async def store_what_is_left(self) -> None:
        """At a clean stop: the transitions still queued are stored now, not left for the next
        dispatcher to work out again from the nodes (which a CDR-less end cannot always tell)."""
        left = self._queue.drain()
        for start in range(0, len(left), APPLY_BATCH_MAX):
            if not await self._store_batch(left[start : start + APPLY_BATCH_MAX], stopping=True):
                return

    async def _store_batch(self, batch: list[Change], **log_fields: Any) -> bool:
        try:
            outcomes = await self._store.apply(batch)
        # Last resort, not only StoreError: this loop runs outside the loop table and must never
        # die; whatever failed, the batch goes back to the front and is tried again.
        except Exception:  # noqa: BLE001
            log.exception("dispatcher.apply_failed", count=len(batch), **log_fields)
            return False
        for change, stored in zip(batch, outcomes):
            if isinstance(change, Transition):
                self._after(change, stored)
        return True

    def _after(self, t: Transition, stored: StoredStatus | None) -> None:
        key = str(t.attempt_id)
        live = self._live.record(key)
        if stored is not None:  # its `status` event was stored with it
            log.info(
                "call.status",
                call_id=str(t.call_id),
                attempt_id=key,
                status=stored.status.value,
                **(live.log_fields() if live is not None else {}),
            )
            if stored.status.is_final and live is not None:
                self._meter.call_finished(live.trunk, stored.status.value)
        if t.status.is_final:
            self._live.forget(key)
