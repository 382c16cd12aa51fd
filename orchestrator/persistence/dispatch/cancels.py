"""The background half of a campaign's cancel: the request only marks the campaign canceled (one
row); its queued calls are canceled here, a batch per transaction, by the dispatcher's sweep.

Safe beside claims and other dispatchers: a batch locks its calls FOR UPDATE SKIP LOCKED, so it
never waits for a claim (a call a claim holds is ended by the claim itself, which reads the
campaign canceled), and two sweeps take different calls. Each batch commits whole, so a sweep
killed midway leaves calls either canceled with their event or still queued, never half done;
the next pass finds what is left from the status counts.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import CancelPosition as Position
from orchestrator.persistence.calls import CAMPAIGN_CANCELED
from orchestrator.persistence.db import Connection, Pool
from orchestrator.persistence.errors import raises_port_errors

# From the counts the triggers keep (a small table), never a count over calls.
_CANCELED_WITH_QUEUED_SQL = """
    SELECT s.campaign_id FROM call_status_counts s JOIN campaigns k ON k.id = s.campaign_id
    WHERE k.status = 'canceled' AND s.status = 'queued'
    GROUP BY s.campaign_id HAVING sum(s.n) > 0
    ORDER BY s.campaign_id
"""

# One batch: the campaign's next queued calls in calls_campaign_page's order, after `position`
# (so a pass walks the index once instead of stepping again over the calls it canceled), each
# with the same 'status' event the claim's own check writes. The last row is the new position.
_CANCEL_BATCH_SQL = """
    WITH picked AS MATERIALIZED (
        SELECT id, created_at FROM calls
        WHERE campaign_id = %(campaign)s AND status = %(queued)s
          AND (created_at, id) > (%(after_at)s::timestamptz, %(after_id)s::uuid)
        ORDER BY created_at, id LIMIT %(batch)s
        FOR UPDATE SKIP LOCKED
    ), canceled AS (
        UPDATE calls c SET status = %(canceled)s, status_reason = %(reason)s, ended_at = now(),
               updated_at = now()
        FROM picked p WHERE c.id = p.id
        RETURNING c.id
    ), events AS (
        INSERT INTO call_events (call_id, at, type, data)
        SELECT id, now(), 'status',
               jsonb_build_object('status', %(canceled)s::text, 'reason', %(reason)s::text)
        FROM canceled
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM events) AS canceled, p.created_at, p.id
    FROM picked p ORDER BY p.created_at DESC, p.id DESC LIMIT 1
"""
_START = (datetime.fromisoformat("0001-01-01T00:00:00+00:00"), UUID(int=0))


async def canceled_with_queued(conn: Connection) -> list[UUID]:
    """Canceled campaigns that still have queued calls."""
    cur = await conn.execute(_CANCELED_WITH_QUEUED_SQL)
    return [row["campaign_id"] for row in await cur.fetchall()]


async def cancel_queued(
    conn: Connection, campaign_id: UUID, after: Position | None, batch: int
) -> tuple[int, Position | None]:
    """Cancels up to `batch` queued calls of the campaign past `after` (None: from its first
    call), in one transaction. Returns how many it canceled and the position to go on from,
    None once no queued call is left past `after` (calls locked by a claim are skipped)."""
    at, call = after or _START
    async with conn.transaction():
        cur = await conn.execute(
            _CANCEL_BATCH_SQL,
            {
                "campaign": campaign_id,
                "after_at": at,
                "after_id": call,
                "batch": batch,
                "queued": CallStatus.QUEUED.value,
                "canceled": CallStatus.CANCELED.value,
                "reason": CAMPAIGN_CANCELED,
            },
        )
        row = await cur.fetchone()
    if row is None:
        return 0, None
    return int(row["canceled"]), (row["created_at"], row["id"])


class CampaignCallCancels:
    """The sweep's store, on the dispatcher's pool: each batch is a short transaction of its own."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @raises_port_errors
    async def canceled_with_queued(self) -> list[UUID]:
        async with self._pool.connection() as conn:
            return await canceled_with_queued(conn)

    @raises_port_errors
    async def cancel_queued(
        self, campaign_id: UUID, after: Position | None, batch: int
    ) -> tuple[int, Position | None]:
        async with self._pool.connection() as conn:
            return await cancel_queued(conn, campaign_id, after, batch)
