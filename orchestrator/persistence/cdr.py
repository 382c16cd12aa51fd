"""The nodes' CDR table (written by Asterisk's cdr_pgsql): kept only as long as it is useful."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg.rows import DictRow


def prune(conn: psycopg.Connection[DictRow], older_than: timedelta, batch: int = 10_000) -> int:
    """Delete CDRs older than `older_than`, a batch per transaction so that the nodes' inserts
    never wait long behind it. Returns how many were deleted."""
    deleted = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                """
                DELETE FROM cdr WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM cdr WHERE calldate < now() - %s LIMIT %s
                ))
                """,
                (older_than, batch),
            )
        deleted += cur.rowcount
        if cur.rowcount < batch:
            return deleted
