"""The events of each call's story that the dispatcher sees (the nodes' and its own), recorded
here and handed to the workers in batches; a batch lost on the way is sent again."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from orchestrator.domain.errors import StoreError
from orchestrator.domain.ports import EventSink
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.outbox import Event, EventOutbox, HeldBatch

log = structlog.get_logger(__name__)

# Event fields worth keeping in call_events (AMI's names, which the ARI driver records too); the
# rest is noise for people reading a call's story.
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
    "Digits",
    "End",
    "Name",
    "Value",
)


def node_event_data(node: str, fields: Mapping[str, str]) -> dict[str, str]:
    """What is kept of a node's event: the fields people read, and which node it came from."""
    return {k: fields[k] for k in _EVENT_FIELDS if k in fields} | {"node": node}


def event_uids() -> Iterator[str]:
    """Unique ids for the events this process records, in UUID form (version 4 bits set): a
    random 72-bit prefix per process, then a counter. uuid4() per event reads the OS's random
    source each time, a measurable share of the dispatcher at a few thousand events a second."""
    prefix = uuid.uuid4().hex
    head = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-8{prefix[17:20]}-"
    for n in itertools.count():
        yield f"{head}{n:012x}"


class EventRecorder:
    """Batches go to a worker through `sink` (Redis); `store_events` (PostgreSQL) takes them
    when Redis does not."""

    def __init__(
        self,
        sink: EventSink,
        store_events: Callable[[list[Event]], Awaitable[int]],
        batch_max: int,
        clock: Clock,
    ) -> None:
        self._sink = sink
        self._store_events = store_events
        self._batch_max = batch_max
        self._clock = clock
        self._events: list[Event] = []
        self._uids = event_uids()
        self._outbox = EventOutbox()

    def record(
        self, call_id: UUID, attempt_id: UUID | None, at: datetime, type_: str, data: dict[str, Any]
    ) -> None:
        event: Event = {
            # Objects, not strings: the batch is pickled to the worker, whose COPY takes them.
            "uid": next(self._uids),
            "call_id": call_id,
            "attempt_id": attempt_id,
            "at": at,
            "type": type_,
            "data": data,
        }
        self._events.append(event)

    def waiting(self) -> list[Event]:
        """The events recorded and not yet handed to a flush, oldest first."""
        return list(self._events)

    def depth(self) -> int:
        """Events this process holds that no worker or store has taken yet."""
        return len(self._events) + self._outbox.events_held()

    def in_flight(self) -> list[str]:
        """The jobs of the batches sent and not yet known recorded."""
        return self._outbox.in_flight()

    async def flush(self) -> None:
        """The events recorded before this flush began, in batches of at most `batch_max`.
        Those recorded while it sends wait for the next flush: draining until none are left made
        a busy dispatcher chase its own stream, sending a job of a few dozen events every few
        milliseconds (dozens of RQ jobs a second, each costing as much as a full one)."""
        left = len(self._events)
        while left:
            batch = self._events[: min(left, self._batch_max)]
            await self._send(HeldBatch(batch))
            del self._events[: len(batch)]  # after the send: a stop mid-send keeps them
            left -= len(batch)

    async def send_held(self) -> None:
        """At a stop: batches waiting out a failure go now; a stop must not wait a minute for them."""
        for held in self._outbox.due(float("inf")):
            await self._send(held)

    async def resend_lost(self) -> None:
        """Redis only carries the batches: one whose job vanished (a flushed Redis, a worker
        killed mid-job) or failed is sent again, later after each failure (EventOutbox). Event
        ids make a second recording a no-op."""
        # First the batches due again: they reach PostgreSQL even while Redis is down, when
        # the jobs in flight cannot be looked up.
        for waiting in self._outbox.due(self._clock.monotonic()):
            await self._send(waiting)
            log.info("dispatch.events_resent", events=len(waiting.events), failures=waiting.failures)
        for job_id in self._outbox.in_flight():
            state = await asyncio.to_thread(self._sink.batch_state, job_id)
            if state == "done":
                self._outbox.recorded(job_id)
            elif state == "lost":
                self._lost(job_id)

    def _lost(self, job_id: str) -> None:
        held = self._outbox.lost(job_id, self._clock.monotonic())
        if held is not None:
            log.warning(
                "dispatch.events_lost",
                events=len(held.events),
                failures=held.failures,
                resend_in_s=round(held.resend_at - self._clock.monotonic(), 1),
            )

    async def _send(self, held: HeldBatch) -> None:
        """To a worker through Redis; if Redis does not take it, stored here directly (the
        events must not pile up in this process's memory while Redis is down); if PostgreSQL
        refuses too, held and tried again later."""
        try:
            self._outbox.sent(await asyncio.to_thread(self._sink.enqueue_events, held.events), held)
            return
        except Exception as exc:  # noqa: BLE001 - whatever keeps the queue from taking it, PostgreSQL will
            log.warning("dispatch.events_queue_down", events=len(held.events), error=str(exc))
        try:
            await self._store_events(held.events)
        except StoreError as exc:
            log.warning("dispatch.events_not_stored", events=len(held.events), error=str(exc))
            self._outbox.hold(held, self._clock.monotonic())
