"""Campaigns: create, read, page, pause, resume and cancel; their bulk intake is persistence/intake.py."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from orchestrator.domain.campaign import CampaignStatus, NewCampaign
from orchestrator.domain.errors import Conflict, NotFound
from orchestrator.persistence.db import Pool
from orchestrator.persistence.intake import Intake
from orchestrator.persistence.paging import decode_cursor, page

Row = dict[str, Any]


def _jsonb(value: dict[str, Any] | dict[str, object] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class CampaignStore:
    def __init__(self, pool: Pool, upload_pool: Pool | None = None) -> None:
        """`upload_pool`: the connections bulk uploads hold while they stream (the other
        requests' pool when not given)."""
        self._pool = pool
        self._upload_pool = upload_pool or pool

    async def create(self, campaign: NewCampaign) -> Row:
        policy, window, callback = campaign.retry, campaign.window, campaign.status_callback
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                INSERT INTO campaigns (id, name, trunk, from_number, tts_template, tts_voice,
                                       ring_timeout_s, cps, window_start, window_end, expires_at,
                                       max_attempts, retry_on, retry_backoff_s, created_by,
                                       interaction, status_callback, tts_mode)
                VALUES (%(id)s, %(name)s, %(trunk)s, %(from)s, %(template)s, %(voice)s, %(ring)s,
                        %(cps)s, %(window_start)s, %(window_end)s, %(expires_at)s, %(max_attempts)s,
                        %(retry_on)s, %(backoff)s, %(created_by)s, %(interaction)s, %(status_callback)s,
                        %(tts_mode)s)
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
                    "interaction": _jsonb(campaign.interaction.to_json()),
                    "status_callback": _jsonb(callback.to_json() if callback else None),
                    "tts_mode": campaign.tts_mode.value,
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

    async def renders(self, campaign_id: UUID) -> tuple[int, int]:
        """(needed, ready): the distinct audio its calls play (every piece, reply and voicemail
        message its uploads staged), and how much of it is rendered."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS needed, count(*) FILTER (WHERE a.status = 'ready') AS ready "
                "FROM campaign_audio n LEFT JOIN audio_assets a ON a.hash = n.hash WHERE n.campaign_id = %s",
                (campaign_id,),
            )
            row = await cur.fetchone()
        return (int(row["needed"]), int(row["ready"])) if row else (0, 0)

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

    async def set_status(self, campaign_id: UUID, status: CampaignStatus) -> Row:
        """Pause, resume or cancel: one row, whatever the campaign holds. A cancel's queued calls
        are canceled afterwards, in the background (persistence/dispatch/cancels.py); from the
        commit on, no claim starts a call of a paused or canceled campaign and no attempt of it
        claimed before is sent (the claim and the mark hold the campaign row FOR SHARE, so this
        waits for one under way)."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT status FROM campaigns WHERE id = %s FOR UPDATE", (campaign_id,))
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
            return updated

    def intake(self, campaign: Row, created_by: str | None, engine: str) -> Intake:
        """`engine`: the speech engine its audio is rendered with (part of each audio's hash)."""
        return Intake(self._upload_pool, campaign, created_by, engine)
