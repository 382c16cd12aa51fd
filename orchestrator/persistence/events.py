"""Recording call events in `call_events`: staged with COPY, then kept only if new (by uid).

The same statements serve the event worker (sync, the usual path) and the dispatcher, which
stores a batch itself when Redis does not take it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import DictRow

from orchestrator.domain.records import CallEvent

CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS events_stage "
    "(event_uid uuid, call_id uuid, attempt_id uuid, at timestamptz, type text, data jsonb) "
    "ON COMMIT DELETE ROWS"
)
COPY_STAGE = "COPY events_stage (event_uid, call_id, attempt_id, at, type, data) FROM STDIN"
KEEP_NEW = """
    INSERT INTO call_events (event_uid, call_id, attempt_id, at, type, data)
    SELECT event_uid, call_id, attempt_id, at, type, data FROM events_stage
    ON CONFLICT (event_uid) WHERE event_uid IS NOT NULL DO NOTHING
"""


def stage_rows(batch: Iterable[CallEvent]) -> Iterable[tuple[Any, ...]]:
    for event in batch:
        yield (
            event.get("uid"),
            event["call_id"],
            event.get("attempt_id"),
            event["at"],
            event["type"],
            json.dumps(event.get("data", {})),
        )


def record_events_sync(db: psycopg.Connection[DictRow], batch: list[CallEvent]) -> int:
    """Returns how many were new."""
    with db.transaction(), db.cursor() as cur:
        cur.execute(CREATE_STAGE)
        with cur.copy(COPY_STAGE) as copy:
            for row in stage_rows(batch):
                copy.write_row(row)
        cur.execute(KEEP_NEW)
        return cur.rowcount


async def record_events_async(conn: psycopg.AsyncConnection[DictRow], batch: list[CallEvent]) -> int:
    """Returns how many were new."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(CREATE_STAGE)
        async with cur.copy(COPY_STAGE) as copy:
            for row in stage_rows(batch):
                await copy.write_row(row)
        await cur.execute(KEEP_NEW)
        return cur.rowcount
