"""Event recording job: one job carries a whole batch from the dispatcher, stored with COPY."""

from __future__ import annotations

import json
from typing import Any

import structlog

from workers.context import current

log = structlog.get_logger(__name__)


def record_events(batch: list[dict[str, Any]]) -> int:
    db = current().db
    copy_sql = "COPY call_events (call_id, attempt_id, at, type, data) FROM STDIN"
    with db.transaction(), db.cursor() as cur, cur.copy(copy_sql) as copy:
        for event in batch:
            copy.write_row(
                (
                    event["call_id"],
                    event.get("attempt_id"),
                    event["at"],
                    event["type"],
                    json.dumps(event.get("data", {})),
                )
            )
    log.debug("events.recorded", count=len(batch))
    return len(batch)
