"""Campaigns and their bulk intake. One upload is one transaction: all of it, or none."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, AsyncCopy
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import BulkRow, CampaignStatus, NewCampaign
from orchestrator.domain.errors import Busy, Conflict, NotFound
from orchestrator.persistence.calls import CAMPAIGN_CANCELED, DNC_REASON
from orchestrator.persistence.db import Pool
from orchestrator.persistence.paging import decode_cursor, page

Row = dict[str, Any]


UPLOAD_TURN_WAIT_S = 10.0
"""How long an upload waits for one of the upload connections before 503 too-many-uploads."""


class CampaignStore:
    def __init__(self, pool: Pool, upload_pool: Pool | None = None) -> None:
        """`upload_pool`: the connections bulk uploads hold while they stream (the other
        requests' pool when not given)."""
        self._pool = pool
        self._upload_pool = upload_pool or pool

    async def create(self, campaign: NewCampaign) -> Row:
        policy, window = campaign.retry, campaign.window
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                INSERT INTO campaigns (id, name, trunk, from_number, tts_template, tts_voice,
                                       ring_timeout_s, cps, window_start, window_end, expires_at,
                                       max_attempts, retry_on, retry_backoff_s, created_by)
                VALUES (%(id)s, %(name)s, %(trunk)s, %(from)s, %(template)s, %(voice)s, %(ring)s,
                        %(cps)s, %(window_start)s, %(window_end)s, %(expires_at)s, %(max_attempts)s,
                        %(retry_on)s, %(backoff)s, %(created_by)s)
                RETURNING *
                """,
                {
                    "id": uuid.uuid4(),
                    "name": campaign.name,
                    "trunk": campaign.trunk,
                    "from": campaign.from_,
                    "template": campaign.template,
                    "voice": campaign.voice,
                    "ring": campaign.ring_timeout_s,
                    "cps": campaign.cps,
                    "window_start": window.start if window else None,
                    "window_end": window.end if window else None,
                    "expires_at": campaign.expires_at,
                    "max_attempts": policy.max_attempts,
                    "retry_on": sorted(s.value for s in policy.retry_on),
                    "backoff": policy.backoff_s,
                    "created_by": campaign.created_by,
                },
            )
            row = await cur.fetchone()
            assert row is not None
            return row

    async def get(self, campaign_id: UUID) -> Row:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM campaigns WHERE id = %s", (campaign_id,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id}", code="no-such-campaign")
        return row

    async def discard_if_empty(self, campaign_id: UUID) -> bool:
        """Delete a campaign that holds no call (its one upload failed); True if it went."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM campaigns k WHERE k.id = %s "
                "AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.campaign_id = k.id)",
                (campaign_id,),
            )
            return cur.rowcount == 1

    async def progress(self, campaign_id: UUID) -> tuple[dict[str, int], float]:
        """Calls by status (the counts the triggers keep) and dials per second over the last
        minute."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, sum(n) AS n FROM call_status_counts WHERE campaign_id = %s "
                "GROUP BY status HAVING sum(n) <> 0",
                (campaign_id,),
            )
            counts = {str(r["status"]): int(r["n"]) for r in await cur.fetchall()}
            cur = await conn.execute(
                """
                SELECT count(*) AS n FROM call_attempts a JOIN calls c ON c.id = a.call_id
                WHERE a.started_at > now() - interval '60 seconds' AND c.campaign_id = %s
                """,
                (campaign_id,),
            )
            recent = await cur.fetchone()
        return counts, (int(recent["n"]) / 60.0 if recent else 0.0)

    async def list_page(self, *, limit: int, cursor: str | None) -> tuple[list[Row], str | None]:
        after = decode_cursor(cursor)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT * FROM campaigns
                WHERE (%(at)s::timestamptz IS NULL OR (created_at, id) > (%(at)s, %(id)s))
                ORDER BY created_at, id LIMIT %(limit)s
                """,
                {"at": after[0] if after else None, "id": after[1] if after else None, "limit": limit + 1},
            )
            rows = await cur.fetchall()
        return page(rows, limit)

    async def set_status(self, campaign_id: UUID, status: CampaignStatus) -> tuple[Row, int]:
        """Pause, resume or cancel. A cancel also cancels every call not yet dialed (live calls
        finish); returns the campaign and how many calls that canceled."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT * FROM campaigns WHERE id = %s FOR UPDATE", (campaign_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no campaign {campaign_id}", code="no-such-campaign")
            if row["status"] == CampaignStatus.CANCELED.value and status is not CampaignStatus.CANCELED:
                raise Conflict("the campaign is canceled", code="campaign-canceled")
            cur = await conn.execute(
                "UPDATE campaigns SET status = %s, updated_at = now() WHERE id = %s RETURNING *",
                (status.value, campaign_id),
            )
            updated = await cur.fetchone()
            assert updated is not None
            canceled = 0
            if status is CampaignStatus.CANCELED:
                cur = await conn.execute(
                    """
                    WITH canceled AS (
                        -- SKIP LOCKED: calls a claim holds now are left to it. It waits for this
                        -- campaign row, then sees the cancel and ends them canceled itself;
                        -- waiting for them here, as it waits for us, would be a deadlock.
                        UPDATE calls c SET status = %(canceled)s, status_reason = %(reason)s,
                               ended_at = now(), updated_at = now()
                        FROM (SELECT id FROM calls WHERE campaign_id = %(id)s AND status = %(queued)s
                              FOR UPDATE SKIP LOCKED) q
                        WHERE c.id = q.id
                        RETURNING c.id
                    )
                    INSERT INTO call_events (call_id, at, type, data)
                    SELECT id, now(), 'status',
                           jsonb_build_object('status', %(canceled)s::text, 'reason', %(reason)s::text)
                    FROM canceled
                    """,
                    {
                        "reason": CAMPAIGN_CANCELED,
                        "id": campaign_id,
                        "canceled": CallStatus.CANCELED.value,
                        "queued": CallStatus.QUEUED.value,
                    },
                )
                canceled = cur.rowcount
            return updated, canceled

    def intake(self, campaign: Row, created_by: str | None = None) -> Intake:
        return Intake(self._upload_pool, campaign, created_by)


class Intake:
    """Stages an upload's rows with COPY as they are parsed, then inserts them in one statement
    that skips numbers the campaign already has. Leaving without `commit()` keeps nothing."""

    def __init__(self, pool: Pool, campaign: Row, created_by: str | None = None) -> None:
        self._pool = pool
        self._campaign = campaign
        self._created_by = created_by
        self._conn: AsyncConnection[DictRow] | None = None
        self._copy_cm: Any = None
        self._copy: AsyncCopy | None = None
        self.staged = 0

    async def __aenter__(self) -> Intake:
        try:
            self._conn = await self._pool.getconn(timeout=UPLOAD_TURN_WAIT_S)
        except PoolTimeout as exc:
            raise Busy(
                f"{self._pool.max_size} uploads are being stored already; nothing was stored, "
                "send it again shortly",
                code="too-many-uploads",
            ) from exc
        await self._conn.execute(
            """
            CREATE TEMP TABLE IF NOT EXISTS intake_stage (
                line int, to_number text, from_number text, trunk text, tts_text text,
                audio_hash text, ring_timeout_s int, time_zones text
            ) ON COMMIT DELETE ROWS
            """
        )
        self._copy_cm = self._conn.cursor().copy(
            "COPY intake_stage (line, to_number, from_number, trunk, tts_text, audio_hash, ring_timeout_s,"
            " time_zones)"
            " FROM STDIN"
        )
        self._copy = await self._copy_cm.__aenter__()
        return self

    async def add(self, line: int, row: BulkRow, audio_hash: str, time_zones: tuple[str, ...] | None) -> None:
        assert self._copy is not None
        await self._copy.write_row(
            (
                line,
                row.to,
                row.from_,
                row.trunk,
                row.text,
                audio_hash,
                row.ring_timeout_s,
                ",".join(time_zones) if time_zones else None,
            )
        )
        self.staged += 1

    async def commit(self, engine: str, voice: str) -> tuple[int, list[str]]:
        """Insert the staged calls; returns (accepted, audio hashes that need a render)."""
        assert self._conn is not None and self._copy_cm is not None
        await self._copy_cm.__aexit__(None, None, None)
        self._copy_cm = None
        conn = self._conn
        # A cancel that came while the body streamed in wins: lock the campaign and look again.
        cur = await conn.execute(
            "SELECT status FROM campaigns WHERE id = %s FOR UPDATE", (self._campaign["id"],)
        )
        current = await cur.fetchone()
        if current is None or current["status"] == CampaignStatus.CANCELED.value:
            raise Conflict(
                "the campaign was canceled during the upload; nothing was stored", code="campaign-canceled"
            )
        cur = await conn.execute(
            """
            INSERT INTO audio_assets (hash, engine, voice, text)
            SELECT DISTINCT ON (audio_hash) audio_hash, %s, %s, tts_text FROM intake_stage
            ORDER BY audio_hash
            ON CONFLICT (hash) DO UPDATE SET status = 'pending', error = NULL
                WHERE audio_assets.status = 'failed'
            RETURNING hash
            """,
            (engine, voice),
        )
        renders = [str(r["hash"]) for r in await cur.fetchall()]
        # created_at steps a microsecond per line so the campaign dials in upload order.
        cur = await conn.execute(
            """
            INSERT INTO calls (id, to_number, from_number, trunk, tts_text, tts_voice, audio_hash,
                               ring_timeout_s, campaign_id, created_at, updated_at, not_before,
                               expires_at, window_start, window_end, time_zones,
                               max_attempts, retry_on, retry_backoff_s, created_by,
                               status, status_reason, ended_at)
            SELECT sespcl_uuid7(), s.to_number, s.from_number, s.trunk, s.tts_text, %(voice)s,
                   s.audio_hash, s.ring_timeout_s, %(campaign)s,
                   now() + s.line * interval '1 microsecond', now(),
                   now() + s.line * interval '1 microsecond', %(expires_at)s, %(window_start)s,
                   %(window_end)s, string_to_array(s.time_zones, ','),
                   %(max_attempts)s, %(retry_on)s, %(retry_backoff_s)s, %(created_by)s,
                   CASE WHEN d.number IS NULL THEN %(queued)s ELSE %(canceled)s END,
                   CASE WHEN d.number IS NULL THEN NULL ELSE %(dnc_reason)s END,
                   CASE WHEN d.number IS NULL THEN NULL ELSE now() END
            FROM intake_stage s LEFT JOIN dnc d ON d.number = s.to_number
            ORDER BY s.line
            ON CONFLICT (campaign_id, to_number) WHERE campaign_id IS NOT NULL DO NOTHING
            """,
            {
                "voice": voice,
                "campaign": self._campaign["id"],
                "dnc_reason": DNC_REASON,
                "queued": CallStatus.QUEUED.value,
                "canceled": CallStatus.CANCELED.value,
                "expires_at": self._campaign["expires_at"],
                "window_start": self._campaign["window_start"],
                "window_end": self._campaign["window_end"],
                "max_attempts": self._campaign["max_attempts"],
                "retry_on": self._campaign["retry_on"],
                "retry_backoff_s": self._campaign["retry_backoff_s"],
                # One value for the whole upload: a parameter of the INSERT, not a staged column.
                "created_by": self._created_by,
            },
        )
        accepted = cur.rowcount
        # The calls just canceled for the do-not-call list get their status event, as every
        # final status does. `ended_at = now()` is this transaction's: a line whose call was
        # already stored by an earlier upload is not recorded twice.
        await conn.execute(
            """
            INSERT INTO call_events (call_id, at, type, data)
            SELECT c.id, c.ended_at, 'status',
                   jsonb_build_object('status', c.status, 'reason', c.status_reason)
            FROM (SELECT DISTINCT s.to_number FROM intake_stage s JOIN dnc d ON d.number = s.to_number)
                AS blocked
            JOIN calls c ON c.campaign_id = %(campaign)s AND c.to_number = blocked.to_number
            WHERE c.status = %(canceled)s AND c.ended_at = now() AND c.status_reason = %(dnc_reason)s
            """,
            {
                "campaign": self._campaign["id"],
                "dnc_reason": DNC_REASON,
                "canceled": CallStatus.CANCELED.value,
            },
        )
        await conn.commit()
        return accepted, renders

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._conn is not None
        try:
            if self._copy_cm is not None:
                try:
                    await self._copy_cm.__aexit__(exc_type or RuntimeError, exc or RuntimeError(), tb)
                except Exception:  # noqa: BLE001 - the COPY is being abandoned; the rollback ends it
                    pass
            await self._conn.rollback()
        finally:
            await self._pool.putconn(self._conn)
            self._conn = None
