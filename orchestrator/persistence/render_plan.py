"""What the render planner reads and marks: the queued calls ahead in each campaign's dial order
(the claim's own order, calls_dialable_by_campaign), the audio they play that is neither ready
nor planned, and the pace the trunks dial at. Its own connection, as the upkeep process's role."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import DictRow

from orchestrator.persistence.db import own_connection
from orchestrator.persistence.errors import raises_port_errors


@dataclass(frozen=True)
class Lane:
    """A campaign's calls on one trunk: the claim takes each lane in (not_before, id) order."""

    trunk: str
    campaign_id: UUID
    paused: bool = field(default=False, compare=False)
    """A paused campaign's first calls are kept rendered (the minimum lookahead, no pace), so
    they dial at once when it resumes."""
    cap_cps: float | None = field(default=None, compare=False)
    """The lowest of the campaign's and the trunk's caps on calls a second (None: neither has
    one): the pace it may reach as soon as it dials."""


Mark = tuple[datetime, UUID]
"""A position in a lane: a call's (not_before, id)."""


@dataclass(frozen=True)
class Ahead:
    """The calls read past a lane's mark: their audio in dial order, and the new mark."""

    audio: list[str]
    mark: Mark | None


_LANES_SQL = """
    SELECT DISTINCT c.trunk, c.campaign_id, k.status = 'paused' AS paused,
           least(k.cps, tr.cps) AS cap_cps
    FROM campaigns k
    JOIN LATERAL (SELECT t.name AS trunk, t.cps FROM trunks t) tr ON true
    JOIN LATERAL (SELECT c.trunk, c.campaign_id FROM calls c
                  WHERE c.status = 'queued' AND c.trunk = tr.trunk AND c.campaign_id = k.id
                  LIMIT 1) c ON true
    WHERE k.status IN ('active', 'paused')
"""
_PACE_SQL = """
    SELECT a.trunk, count(*)::float / %(window_s)s AS per_s FROM call_attempts a
    WHERE a.started_at > now() - make_interval(secs => %(window_s)s) GROUP BY a.trunk
"""
# Queued calls of the lane up to the mark (bounded: only whether `horizon` are there matters).
_PLANNED_AHEAD_SQL = """
    SELECT count(*) AS n FROM (
        SELECT 1 FROM calls c
        WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id = %(campaign)s
          AND (c.not_before, c.id) <= (%(at)s, %(id)s)
        ORDER BY c.not_before, c.id LIMIT %(horizon)s
    ) q
"""
# The next calls past the mark within the time horizon, each with all the audio it plays.
_NEXT_SQL = """
    SELECT c.id, c.not_before,
           array_cat(coalesce(c.segments, ARRAY[c.audio_hash]), coalesce(c.extra_audio, '{}')) AS audio
    FROM calls c
    WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id = %(campaign)s
      AND (%(at)s::timestamptz IS NULL OR (c.not_before, c.id) > (%(at)s, %(id)s))
      AND c.not_before <= now() + make_interval(secs => %(within_s)s)
    ORDER BY c.not_before, c.id LIMIT %(limit)s
"""
# Marks the audio planned, in the order given, if no one has; returns what was marked. A job
# lost after this is found by the dispatcher's sweep for lost renders (planned, still pending).
_MARK_PLANNED_SQL = """
    UPDATE audio_assets a SET planned_at = now()
    FROM unnest(%(hashes)s::text[]) WITH ORDINALITY AS w(hash, ord)
    WHERE a.hash = w.hash AND a.status = 'pending' AND a.planned_at IS NULL
    RETURNING a.hash, w.ord
"""
_UNPLAN_SQL = "UPDATE audio_assets SET planned_at = NULL WHERE hash = ANY(%s) AND status = 'pending'"


class RenderPlanStore:
    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name

    def _connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[DictRow]]:
        return own_connection(self._url, self._name, autocommit=True)

    @raises_port_errors
    async def lanes(self) -> list[Lane]:
        """The lanes of active and paused campaigns that have queued calls (a canceled one's are
        never rendered)."""
        async with self._connection() as conn:
            cur = await conn.execute(_LANES_SQL)
            return [
                Lane(str(r["trunk"]), r["campaign_id"], bool(r["paused"]), r["cap_cps"])
                for r in await cur.fetchall()
            ]

    @raises_port_errors
    async def pace(self, window_s: float) -> dict[str, float]:
        """Calls started per second on each trunk over the last `window_s`."""
        async with self._connection() as conn:
            cur = await conn.execute(_PACE_SQL, {"window_s": window_s})
            return {str(r["trunk"]): float(r["per_s"]) for r in await cur.fetchall()}

    @raises_port_errors
    async def planned_ahead(self, lane: Lane, mark: Mark, horizon: int) -> int:
        """Queued calls of the lane up to `mark` (at most `horizon`): those already planned."""
        async with self._connection() as conn:
            cur = await conn.execute(
                _PLANNED_AHEAD_SQL,
                {
                    "trunk": lane.trunk,
                    "campaign": lane.campaign_id,
                    "at": mark[0],
                    "id": mark[1],
                    "horizon": horizon,
                },
            )
            row = await cur.fetchone()
            return int(row["n"]) if row else 0

    @raises_port_errors
    async def next_calls(self, lane: Lane, mark: Mark | None, limit: int, within_s: float) -> Ahead:
        """Up to `limit` calls past `mark` due within `within_s`: their audio, in dial order."""
        async with self._connection() as conn:
            cur = await conn.execute(
                _NEXT_SQL,
                {
                    "trunk": lane.trunk,
                    "campaign": lane.campaign_id,
                    "at": mark[0] if mark else None,
                    "id": mark[1] if mark else None,
                    "within_s": within_s,
                    "limit": limit,
                },
            )
            rows = await cur.fetchall()
        audio = [str(h) for row in rows for h in row["audio"]]
        return Ahead(audio, (rows[-1]["not_before"], rows[-1]["id"]) if rows else mark)

    @raises_port_errors
    async def mark_planned(self, hashes: list[str]) -> list[str]:
        """Of `hashes` (in dial order, each once), those pending and not yet planned, now marked
        planned, in the same order: the renders to enqueue."""
        if not hashes:
            return []
        async with self._connection() as conn:
            cur = await conn.execute(_MARK_PLANNED_SQL, {"hashes": hashes})
            rows = await cur.fetchall()
        return [str(r["hash"]) for r in sorted(rows, key=lambda r: int(r["ord"]))]

    @raises_port_errors
    async def unplan(self, hashes: list[str]) -> None:
        """Renders that could not be enqueued: planned again on the next pass."""
        async with self._connection() as conn:
            await conn.execute(_UNPLAN_SQL, (hashes,))
