"""What a claim may dial: each trunk's next queued calls, shared fairly between its campaigns,
then held back by their calling hours and expiry."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow

from orchestrator.domain.calling_hours import CallingWindow, Defer, Expire, dial_decision
from orchestrator.persistence.db import Connection

Row = DictRow

EXPIRED_REASON = "expired before it could be dialed"

# What a claim reads of each candidate call (c: calls, a: its audio asset), and the paths of
# the audio a two-way call needs besides its prompt (replies, voicemail message). A message
# from segments plays its pieces in order: their paths joined by '&', as Playback takes them.
_CANDIDATE_COLUMNS = """
    c.id, c.to_number, c.from_number, c.trunk, c.ring_timeout_s, c.attempt_count, c.created_at,
    c.campaign_id, c.not_before,
    CASE WHEN c.segments IS NULL THEN a.path ELSE (SELECT string_agg(x.path, '&' ORDER BY s.ord)
        FROM unnest(c.segments) WITH ORDINALITY AS s(hash, ord) JOIN audio_assets x ON x.hash = s.hash)
    END AS path, c.expires_at, c.window_start, c.window_end, c.time_zones,
    c.max_attempts, c.retry_on, c.retry_backoff_s, c.interaction,
    CASE WHEN c.extra_audio IS NOT NULL THEN (SELECT jsonb_object_agg(x.hash, x.path)
        FROM audio_assets x WHERE x.hash = ANY(c.extra_audio)) END AS extra_paths
"""
# A call waits until every audio it may play is ready, not only its prompt (or first piece).
_EXTRA_AUDIO_READY = """
    (c.extra_audio IS NULL OR NOT EXISTS (SELECT 1 FROM audio_assets x
                                          WHERE x.hash = ANY(c.extra_audio) AND x.status <> 'ready'))
    AND (c.segments IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(c.segments) AS s(hash)
                                           LEFT JOIN audio_assets x ON x.hash = s.hash
                                           WHERE x.status IS DISTINCT FROM 'ready'))
"""

_SINGLE_CALLS_SQL = f"""
    SELECT {_CANDIDATE_COLUMNS} FROM calls c JOIN audio_assets a ON a.hash = c.audio_hash
    WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id IS NULL
      AND c.not_before <= now() AND a.status = 'ready' AND {_EXTRA_AUDIO_READY}
    ORDER BY c.not_before, c.id LIMIT %(limit)s
    FOR UPDATE OF c SKIP LOCKED
"""

_CAMPAIGN_CALLS_SQL = f"""
    WITH RECURSIVE campaigns_here AS (  -- distinct campaigns queued on the trunk: a skip scan
        (SELECT campaign_id FROM calls
         WHERE status = 'queued' AND trunk = %(trunk)s AND campaign_id IS NOT NULL
         ORDER BY campaign_id LIMIT 1)
        UNION ALL
        SELECT (SELECT c.campaign_id FROM calls c
                WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id > h.campaign_id
                ORDER BY c.campaign_id LIMIT 1)
        FROM campaigns_here h WHERE h.campaign_id IS NOT NULL
    )
    SELECT {_CANDIDATE_COLUMNS} FROM campaigns_here h
    CROSS JOIN LATERAL (
        SELECT c.* FROM calls c
        WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id = h.campaign_id
          AND c.not_before <= now()
        ORDER BY c.not_before, c.id LIMIT %(limit)s * 2
    ) c
    JOIN audio_assets a ON a.hash = c.audio_hash AND a.status = 'ready'
    WHERE h.campaign_id IS NOT NULL AND h.campaign_id <> ALL(%(held)s::uuid[]) AND {_EXTRA_AUDIO_READY}
    ORDER BY c.campaign_id, c.not_before, c.id
    FOR UPDATE OF c SKIP LOCKED
"""


def expire_sql(only_ids: bool) -> str:
    """Cancel queued calls past their expiry (all of them, or the ids given), with an event."""
    narrow = "AND id = ANY(%(ids)s)" if only_ids else ""
    return f"""
        WITH expired AS (
            UPDATE calls SET status = 'canceled', status_reason = %(reason)s, ended_at = now(),
                   updated_at = now()
            WHERE status = 'queued' AND expires_at <= now() {narrow}
            RETURNING id
        )
        INSERT INTO call_events (call_id, at, type, data)
        SELECT id, now(), 'status', jsonb_build_object('status', 'canceled', 'reason', %(reason)s::text)
        FROM expired
    """


def take_fairly(groups: list[list[Row]], budget: int) -> list[Row]:
    """Round robin over the groups (campaigns), oldest group first: the i-th call of every
    group before the (i+1)-th of any. Each row taken gets its `fair_rank` (its round)."""
    groups = sorted((g for g in groups if g), key=lambda g: (g[0]["not_before"], g[0]["id"]))
    taken: list[Row] = []
    for round_ in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if round_ < len(group) and len(taken) < budget:
                taken.append({**group[round_], "fair_rank": round_})
    return taken


async def campaign_groups(
    conn: Connection, trunk: str, limit: int, held: list[UUID], *, campaigns: bool, singles: bool
) -> list[list[Row]]:
    """A trunk's next dialable calls, up to `limit` per campaign (single calls are one more
    group), oldest first within each. Rows are locked; those not taken are freed at commit.
    `campaigns` and `singles` say which of the two queries can find anything."""
    groups = await _campaign_calls(conn, trunk, limit, held) if campaigns else []
    if singles and (found := await _single_calls(conn, trunk, limit)):
        groups.append(found)
    return groups


async def _single_calls(conn: Connection, trunk: str, limit: int) -> list[Row]:
    cur = await conn.execute(_SINGLE_CALLS_SQL, {"trunk": trunk, "limit": limit})
    return await cur.fetchall()


async def _campaign_calls(conn: Connection, trunk: str, limit: int, held: list[UUID]) -> list[list[Row]]:
    cur = await conn.execute(_CAMPAIGN_CALLS_SQL, {"trunk": trunk, "limit": limit, "held": held})
    by_campaign: dict[Any, list[Row]] = {}
    for row in await cur.fetchall():
        by_campaign.setdefault(row["campaign_id"], []).append(row)
    return [rows[:limit] for rows in by_campaign.values()]


async def hold_back(conn: Connection, rows: list[Row], now: datetime) -> list[Row]:
    """Calling hours and expiry, checked just before dialing: a call outside its window
    waits (its not_before moves to the next opening), one past its expiry is canceled."""
    dial: list[Row] = []
    deferred: list[tuple[datetime, UUID]] = []
    expired: list[UUID] = []
    for row in rows:
        window = CallingWindow(row["window_start"], row["window_end"]) if row["window_start"] else None
        zones = tuple(row["time_zones"]) if row["time_zones"] else None
        decision = dial_decision(now, row["expires_at"], window, zones)
        if isinstance(decision, Defer):
            deferred.append((decision.until, row["id"]))
        elif isinstance(decision, Expire):
            expired.append(row["id"])
        else:
            dial.append(row)
    if deferred:
        async with conn.cursor() as cur:
            await cur.executemany("UPDATE calls SET not_before = %s WHERE id = %s", deferred)
    if expired:
        await conn.execute(expire_sql(only_ids=True), {"reason": EXPIRED_REASON, "ids": expired})
    return dial
