"""What the dispatcher's periodic sweeps read and write: calls past their expiry, cancels asked
for, prompts whose render may be lost, and the status counts folded."""

from __future__ import annotations

from uuid import UUID

from orchestrator.persistence.db import Connection
from orchestrator.persistence.dispatch.candidates import EXPIRED_REASON, expire_sql


async def expire_due(conn: Connection) -> int:
    """Queued calls whose expiry passed while they waited (for a window, a pause…)."""
    cur = await conn.execute(expire_sql(only_ids=False), {"reason": EXPIRED_REASON})
    return cur.rowcount


async def cancel_requests(conn: Connection) -> list[UUID]:
    """Live calls whose cancel was asked for through the API."""
    cur = await conn.execute(
        """
        SELECT id FROM calls
        WHERE cancel_requested_at IS NOT NULL
          AND status IN ('initiated', 'ringing', 'in-progress')
        """
    )
    return [row["id"] for row in await cur.fetchall()]


async def stale_renders(conn: Connection, older_than_s: float) -> list[str]:
    """Audio still pending a while after its render was enqueued: its job may be lost. Audio
    not yet planned (a bulk upload's, far down its queue) waits for the render planner."""
    cur = await conn.execute(
        "SELECT hash FROM audio_assets WHERE status = 'pending' "
        "AND planned_at < now() - make_interval(secs => %s) ORDER BY planned_at LIMIT 1000",
        (older_than_s,),
    )
    return [str(row["hash"]) for row in await cur.fetchall()]


async def fold_status_counts(conn: Connection) -> int:
    """Folds the status-count deltas the triggers wrote; returns how many rows went."""
    cur = await conn.execute("SELECT sespcl_fold_status_counts() AS gone")
    row = await cur.fetchone()
    return int(row["gone"]) if row else 0
