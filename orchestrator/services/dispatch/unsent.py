"""Attempts known never dialed, and their calls put back in the queue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

import structlog

from orchestrator.domain.ports import DispatchRepository, Unsent
from orchestrator.domain.records import Requeued
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.events import EventRecorder
from orchestrator.services.dispatch.settings import STRAY_AFTER_S

log = structlog.get_logger(__name__)


class UnsentAttempts:
    """Each attempt with why it was not dialed, until the store has put its call back."""

    def __init__(self, store: DispatchRepository, recorder: EventRecorder, clock: Clock) -> None:
        self._store = store
        self._recorder = recorder
        self._clock = clock
        self._unsent: dict[UUID, Unsent] = {}

    def add(self, attempt_ids: Iterable[UUID], why: Unsent) -> None:
        for attempt_id in attempt_ids:
            self._unsent[attempt_id] = why

    def why(self, attempt_id: UUID) -> Unsent | None:
        return self._unsent.get(attempt_id)

    def __len__(self) -> int:
        return len(self._unsent)

    async def requeue(self) -> None:
        """Attempts this dispatcher owns and knows were never sent (its own claims whose "sent"
        mark failed, whether or not it reached the database; adopted ones never marked; those a
        node made no channel for): back to the queue. Retried every few seconds until it
        succeeds. Then any it owns but does not know of (a claim that raised after its COMMIT
        landed)."""
        for why in Unsent:
            ids = [attempt_id for attempt_id, reason in self._unsent.items() if reason is why]
            if ids:
                self.note_requeued(await self._store.requeue_unsent(ids, why))
                for attempt_id in ids:
                    self._unsent.pop(attempt_id, None)
        self.note_requeued(await self._store.requeue_stray(STRAY_AFTER_S))

    def note_requeued(self, requeued: Iterable[Requeued]) -> None:
        """Calls the store put back in the queue: logged, and their story told."""
        for r in requeued:
            status = r.status.value
            log.warning(
                "dispatch.requeued_unsent",
                call_id=str(r.call_id),
                attempt_id=str(r.attempt_id),
                status=status,
            )
            at = self._clock.now()
            self._recorder.record(r.call_id, r.attempt_id, at, "dispatch.not_sent", {"status": status})
            self._recorder.record(
                r.call_id, None, at + timedelta(microseconds=1), "status", {"status": status}
            )
