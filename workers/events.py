"""Event recording job: one job carries a whole batch from the dispatcher, stored with COPY."""

from __future__ import annotations

import structlog

from orchestrator.domain.records import CallEvent
from orchestrator.persistence.events import record_events_sync
from workers.context import current

log = structlog.get_logger(__name__)


def record_events(batch: list[CallEvent]) -> int:
    """Stage the batch with COPY, then keep only events not recorded yet (by their uid)."""
    recorded = record_events_sync(current().db, batch)
    log.debug("events.recorded", count=recorded, duplicates=len(batch) - recorded)
    return recorded
