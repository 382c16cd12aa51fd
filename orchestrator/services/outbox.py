"""Event batches handed to the queue, held until a worker has recorded them (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.records import CallEvent

Event = CallEvent

FIRST_RESEND_AFTER_S = 2.0
RESEND_AFTER_MAX_S = 60.0
SPLIT_AFTER_FAILURES = 3


@dataclass
class HeldBatch:
    events: list[Event]
    failures: int = 0
    resend_at: float = 0.0


def resend_delay(failures: int) -> float:
    """2 s after the first failure, doubling, at most a minute: a database that is down for an
    hour costs a failed job a minute, not one every two seconds, each kept a day by RQ."""
    return min(RESEND_AFTER_MAX_S, FIRST_RESEND_AFTER_S * 2.0 ** max(0, failures - 1))


class EventOutbox:
    """Batches in flight by job id, and lost ones waiting to be sent again.

    A batch whose job failed or vanished is sent again later each time. After a few failures it
    is sent in halves, so that an event the database refuses holds back only itself, and the
    rest of its batch is recorded. Nothing is ever dropped: the event ids make a second
    recording a no-op, so sending again is always safe."""

    def __init__(self) -> None:
        self._in_flight: dict[str, HeldBatch] = {}
        self._waiting: list[HeldBatch] = []

    def sent(self, job_id: str, batch: HeldBatch) -> None:
        self._in_flight[job_id] = batch

    def in_flight(self) -> list[str]:
        return list(self._in_flight)

    def recorded(self, job_id: str) -> None:
        self._in_flight.pop(job_id, None)

    def hold(self, batch: HeldBatch, now: float) -> None:
        """A batch that could not be sent at all: it waits, as a lost one does."""
        failures = batch.failures + 1
        self._waiting.append(HeldBatch(batch.events, failures, now + resend_delay(failures)))

    def lost(self, job_id: str, now: float) -> HeldBatch | None:
        """The job is gone or failed: its batch (or its halves) waits for its next sending.
        Returns the batch, with its failure count, or None if it was not held."""
        batch = self._in_flight.pop(job_id, None)
        if batch is None:
            return None
        failures = batch.failures + 1
        events = batch.events
        pieces = (
            [events[: len(events) // 2], events[len(events) // 2 :]]
            if failures >= SPLIT_AFTER_FAILURES and len(events) > 1
            else [events]
        )
        at = now + resend_delay(failures)
        self._waiting.extend(HeldBatch(piece, failures, at) for piece in pieces)
        return HeldBatch(events, failures, at)

    def due(self, now: float) -> list[HeldBatch]:
        """The waiting batches whose time has come (all of them with `now` = inf), taken out."""
        ready = [b for b in self._waiting if b.resend_at <= now]
        self._waiting = [b for b in self._waiting if b.resend_at > now]
        return ready

    def events_held(self) -> int:
        return sum(len(b.events) for b in self._in_flight.values()) + sum(
            len(b.events) for b in self._waiting
        )
