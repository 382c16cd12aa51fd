"""audio_assets rows a prune may delete, and the figures of the disk they use.

The race that matters: a call accepted now that reuses an existing asset row. The call is
inserted in the transaction that upserts its audio rows (persistence/calls.py, intake.py:
`INSERT … ON CONFLICT (hash) DO UPDATE … WHERE status = 'failed'`), and ON CONFLICT DO UPDATE
locks the existing row even when its WHERE is false. A prune batch is one transaction of two
statements:
1. lock the candidate rows `FOR UPDATE SKIP LOCKED` (a row an intake holds is skipped: its call
   is being accepted);
2. delete those no live call needs, checked by a new statement, so with a snapshot taken after
   every lock was granted: an intake that held one of these rows has committed by then and its
   call is seen. (In one statement the check's snapshot could predate such a commit: ON CONFLICT
   only locked the row, so no re-check would follow.)
An intake that comes after the lock waits for the prune, finds the row gone and inserts it again,
pending: its request enqueues the render again (verified on PostgreSQL 15). Pending rows, renders
in flight, are never candidates.

Checking "no live call needs it" reads the live calls once per batch (a sequential pass over
`calls`: no index on audio_hash, which every inserted call would pay for; about 0.3 s beside a
million calls here), hence batches of 10,000, for a job that runs daily.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import psycopg
from psycopg.rows import DictRow

from orchestrator.domain.audio_retention import PrunedAsset
from orchestrator.domain.call import LIVE_STATUSES
from orchestrator.persistence.db import own_connection
from orchestrator.persistence.errors import raises_port_errors

_LIVE = sorted(status.value for status in LIVE_STATUSES)

# A row rendered before size_bytes existed: 8 kHz µ-law is 8 bytes a millisecond.
SIZE_SQL = "coalesce(size_bytes, duration_ms::bigint * 8, 0)"

_CANDIDATES_SQL = """
    SELECT hash FROM audio_assets
    WHERE hash > %(after)s AND status <> 'pending'
      AND coalesce(rendered_at, created_at) < now() - %(older_than)s
    ORDER BY hash LIMIT %(limit)s
"""

_LOCK_SQL = """
    SELECT hash FROM audio_assets
    WHERE hash = ANY(%(hashes)s) AND status <> 'pending'
      AND coalesce(rendered_at, created_at) < now() - %(older_than)s
    FOR UPDATE SKIP LOCKED
"""

_DELETE_UNNEEDED_SQL = f"""
    WITH locked AS (SELECT unnest(%(locked)s::text[]) AS hash),
    needed AS (  -- one pass over the live calls, each audio they play hash-joined to the batch
        SELECT h.hash FROM calls c
        CROSS JOIN LATERAL unnest(array_cat(array_prepend(c.audio_hash, coalesce(c.extra_audio, '{{}}')),
                                            coalesce(c.segments, '{{}}'))) AS h(hash)
        JOIN locked l ON l.hash = h.hash
        WHERE c.status = ANY(%(live)s)
    ),
    unneeded AS (SELECT hash FROM locked EXCEPT SELECT hash FROM needed)  -- hashed, not n × m
    DELETE FROM audio_assets a USING unneeded u
    WHERE a.hash = u.hash
    RETURNING a.hash, {SIZE_SQL} AS size_bytes
"""


class AudioPruneStore:
    """Its own connection (the upkeep process and the CLI have no pool), as the schema's owner."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name

    def _connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[DictRow]]:
        return own_connection(self._url, self._name)

    @raises_port_errors
    async def candidates(self, older_than: timedelta, after: str, limit: int) -> list[str]:
        """Up to `limit` hashes past `after` (in hash order) old enough and not pending: the
        next batch to try. Whether a call needs them is checked by `delete_unneeded`."""
        async with self._connection() as conn:
            cur = await conn.execute(
                _CANDIDATES_SQL, {"after": after, "older_than": older_than, "limit": limit}
            )
            return [str(row["hash"]) for row in await cur.fetchall()]

    @raises_port_errors
    async def delete_unneeded(self, hashes: list[str], older_than: timedelta) -> list[PrunedAsset]:
        """Delete the rows of `hashes` still old, not pending, not locked by an intake and not
        needed by any live call (module docstring); returns those deleted."""
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(_LOCK_SQL, {"hashes": hashes, "older_than": older_than})
            locked = [str(row["hash"]) for row in await cur.fetchall()]
            if not locked:
                return []
            cur = await conn.execute(_DELETE_UNNEEDED_SQL, {"live": _LIVE, "locked": locked})
            return [PrunedAsset(str(row["hash"]), int(row["size_bytes"])) for row in await cur.fetchall()]

    @raises_port_errors
    async def existing(self, hashes: list[str]) -> set[str]:
        """Which of `hashes` have an audio_assets row (in any status)."""
        async with self._connection() as conn:
            cur = await conn.execute("SELECT hash FROM audio_assets WHERE hash = ANY(%s)", (hashes,))
            return {str(row["hash"]) for row in await cur.fetchall()}
