"""Event recording job: one job carries a whole batch from the dispatcher, stored with COPY."""

from __future__ import annotations

import json
from typing import Any

import structlog

from workers.context import current

log = structlog.get_logger(__name__)


def record_events(batch: list[dict[str, Any]]) -> int:
    """Stage the batch with COPY, then keep only events not recorded yet (by their uid)."""
    db = current().db
    with db.transaction(), db.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS events_stage "
            "(event_uid uuid, call_id uuid, attempt_id uuid, at timestamptz, type text, data jsonb) "
            "ON COMMIT DELETE ROWS"
        )
        with cur.copy(
            "COPY events_stage (event_uid, call_id, attempt_id, at, type, data) FROM STDIN"
        ) as copy:
            for event in batch:
                copy.write_row(
                    (
                        event.get("uid"),
                        event["call_id"],
                        event.get("attempt_id"),
                        event["at"],
                        event["type"],
                        json.dumps(event.get("data", {})),
                    )
                )
        cur.execute(
            """
            INSERT INTO call_events (event_uid, call_id, attempt_id, at, type, data)
            SELECT event_uid, call_id, attempt_id, at, type, data FROM events_stage
            ON CONFLICT (event_uid) WHERE event_uid IS NOT NULL DO NOTHING
            """
        )
        recorded = cur.rowcount
    log.debug("events.recorded", count=recorded, duplicates=len(batch) - recorded)
    return recorded
