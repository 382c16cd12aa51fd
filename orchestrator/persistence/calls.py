"""Calls as the API sees them: create (idempotently), read, cancel, list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from orchestrator.domain.call import DIALED_STATUSES, CallStatus, NewCall
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.webhooks import StatusCallback
from orchestrator.persistence.db import Pool
from orchestrator.persistence.paging import decode_cursor, page

Row = dict[str, Any]
DNC_REASON = "number is on the do-not-call list"
CANCELED_BEFORE_DIALING = "canceled before dialing"
CANCELED_BY_REQUEST = "canceled by request"
CAMPAIGN_CANCELED = "campaign canceled"
TRUNK_REMOVED = "trunk removed"


@dataclass(frozen=True)
class CreateResult:
    call: Row
    created: bool
    """False when an Idempotency-Key replay returned the original call."""
    renders: tuple[str, ...]
    """The audio hashes this call is the first to ask for (or whose failed render is retried):
    the renders to enqueue."""
    idempotency_conflict: bool = False


def assets_of(call: NewCall) -> list[tuple[str, str, str]]:
    """(hash, voice, text) of every audio the call needs, its prompt first, each once."""
    assets = {call.audio_key: (call.audio_key, call.voice, call.text)}
    for speech in call.interaction.speeches():
        assets.setdefault(speech.audio_hash, (speech.audio_hash, speech.voice, speech.text))
    return list(assets.values())


async def insert_assets(
    conn: AsyncConnection[DictRow], engine: str, assets: list[tuple[str, str, str]]
) -> tuple[str, ...]:
    """Store the audio rows calls wait on; returns the hashes whose render this request must
    enqueue (marked planned): those it inserted, failed ones it asks for again, and pending ones
    the render planner has not reached (a campaign's far down its queue, or paused)."""
    hashes, voices, texts = (list(column) for column in zip(*assets, strict=True))
    cur = await conn.execute(
        """
        INSERT INTO audio_assets (hash, engine, voice, text, planned_at)
        SELECT hash, %s, voice, text, now()
        FROM unnest(%s::text[], %s::text[], %s::text[]) AS a(hash, voice, text)
        ON CONFLICT (hash) DO UPDATE SET status = 'pending', error = NULL, planned_at = now()
            WHERE audio_assets.status = 'failed'
               OR (audio_assets.status = 'pending' AND audio_assets.planned_at IS NULL)
        RETURNING hash
        """,
        (engine, hashes, voices, texts),
    )
    return tuple(str(r["hash"]) for r in await cur.fetchall())


def two_way_columns(interaction: Interaction, callback: StatusCallback | None) -> dict[str, Any]:
    """The calls columns of what a two-way call asks (all NULL for a plain call)."""
    stored = interaction.to_json()
    return {
        "interaction": None if stored is None else Jsonb(stored),
        "extra_audio": interaction.audio_hashes() or None,
        "status_callback": None if callback is None else Jsonb(callback.to_json()),
    }


class CallStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self,
        call: NewCall,
        *,
        engine: str,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> CreateResult:
        async with self._pool.connection() as conn, conn.transaction():
            if idempotency_key is not None:
                # Serialise requests sharing a key so two concurrent replays cannot both insert.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (idempotency_key,)
                )
                cur = await conn.execute("SELECT * FROM calls WHERE idempotency_key = %s", (idempotency_key,))
                existing = await cur.fetchone()
                if existing is not None:
                    return CreateResult(
                        existing,
                        created=False,
                        renders=(),
                        idempotency_conflict=existing["request_hash"] != request_hash,
                    )
            renders = await insert_assets(conn, engine, assets_of(call))
            # A number on the do-not-call list is accepted, and ends canceled with the reason;
            # like every final status, that one has its status event.
            cur = await conn.execute(
                """
                WITH created AS (
                INSERT INTO calls (id, to_number, from_number, trunk, tts_text, tts_voice,
                                   audio_hash, ring_timeout_s, metadata, idempotency_key,
                                   request_hash, not_before, expires_at, window_start, window_end,
                                   time_zones, max_attempts, retry_on, retry_backoff_s,
                                   created_by, interaction, extra_audio, status_callback,
                                   status, status_reason, ended_at)
                SELECT %(id)s, %(to)s, %(from)s, %(trunk)s, %(text)s, %(voice)s, %(audio)s, %(ring)s,
                       %(metadata)s, %(key)s, %(hash)s, coalesce(%(not_before)s, now()), %(expires_at)s,
                       %(window_start)s, %(window_end)s, %(zones)s, %(max_attempts)s, %(retry_on)s,
                       %(backoff)s, %(created_by)s, %(interaction)s, %(extra_audio)s,
                       %(status_callback)s,
                       CASE WHEN d.number IS NULL THEN %(queued)s ELSE %(canceled)s END,
                       CASE WHEN d.number IS NULL THEN NULL ELSE %(dnc_reason)s END,
                       CASE WHEN d.number IS NULL THEN NULL ELSE now() END
                FROM (SELECT 1) AS one LEFT JOIN dnc d ON d.number = %(to)s
                RETURNING *
                ), recorded AS (
                    INSERT INTO call_events (call_id, at, type, data)
                    SELECT id, ended_at, 'status',
                           jsonb_build_object('status', status, 'reason', status_reason)
                    FROM created WHERE status = %(canceled)s
                )
                SELECT * FROM created
                """,
                {
                    "id": call.id,
                    "to": call.to,
                    "from": call.from_,
                    "trunk": call.trunk,
                    "text": call.text,
                    "voice": call.voice,
                    "audio": call.audio_key,
                    "ring": call.ring_timeout_s,
                    "metadata": Jsonb(call.metadata) if call.metadata is not None else None,
                    "key": idempotency_key,
                    "hash": request_hash,
                    "dnc_reason": DNC_REASON,
                    "queued": CallStatus.QUEUED.value,
                    "canceled": CallStatus.CANCELED.value,
                    "not_before": call.not_before,
                    "expires_at": call.expires_at,
                    "window_start": call.window.start if call.window else None,
                    "window_end": call.window.end if call.window else None,
                    "zones": list(call.time_zones) if call.time_zones else None,
                    "max_attempts": call.retry.max_attempts if call.retry else 1,
                    "retry_on": sorted(s.value for s in call.retry.retry_on) if call.retry else [],
                    "backoff": call.retry.backoff_s if call.retry else 60.0,
                    "created_by": call.created_by,
                    **two_way_columns(call.interaction, call.status_callback),
                },
            )
            row = await cur.fetchone()
            assert row is not None
            return CreateResult(row, created=True, renders=renders)

    async def trunk_names(self) -> frozenset[str]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT name FROM trunks")
            return frozenset(str(r["name"]) for r in await cur.fetchall())

    async def trunk_exists(self, name: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM trunks WHERE name = %s", (name,))
            return await cur.fetchone() is not None

    async def default_trunk(self) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT name FROM trunks WHERE is_default")
            row = await cur.fetchone()
            return None if row is None else str(row["name"])

    async def get(self, call_id: UUID) -> Row | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM calls WHERE id = %s", (call_id,))
            return await cur.fetchone()

    async def attempts(self, call_id: UUID) -> list[Row]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM call_attempts WHERE call_id = %s ORDER BY number", (call_id,)
            )
            return await cur.fetchall()

    async def events(self, call_id: UUID) -> list[Row]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                -- `queued` is not stored per call (a million-row intake would write it a million
                -- times): it is the call's creation, read from the call itself.
                WITH story AS (
                    SELECT 0::bigint AS id, created_at AS at, 'status' AS type,
                           jsonb_build_object('status', %(queued)s::text) AS data, NULL::uuid AS attempt_id
                    FROM calls WHERE id = %(id)s
                    UNION ALL
                    SELECT id, at, type, data, attempt_id FROM call_events WHERE call_id = %(id)s
                )
                SELECT row_number() OVER (ORDER BY at, id) AS seq, at, type, data, attempt_id
                FROM story ORDER BY at, id
                """,
                {"id": call_id, "queued": CallStatus.QUEUED.value},
            )
            return await cur.fetchall()

    async def cancel(self, call_id: UUID) -> Row | None:
        """Cancel a call not yet dialed outright; flag a live one for the dispatcher to hang up.

        Returns the call as it stands afterwards, or None when there is no such call.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """
                UPDATE calls SET status = %(canceled)s, status_reason = %(reason)s,
                       cancel_requested_at = now(), ended_at = now(), updated_at = now()
                WHERE id = %(id)s AND status = %(queued)s
                RETURNING *
                """,
                {
                    "id": call_id,
                    "reason": CANCELED_BEFORE_DIALING,
                    "canceled": CallStatus.CANCELED.value,
                    "queued": CallStatus.QUEUED.value,
                },
            )
            row = await cur.fetchone()
            if row is not None:
                await conn.execute(
                    "INSERT INTO call_events (call_id, at, type, data) VALUES (%s, now(), 'status', %s)",
                    (
                        call_id,
                        Jsonb({"status": CallStatus.CANCELED.value, "reason": CANCELED_BEFORE_DIALING}),
                    ),
                )
                return row
            cur = await conn.execute(
                """
                UPDATE calls SET cancel_requested_at = coalesce(cancel_requested_at, now()),
                       updated_at = now()
                WHERE id = %s AND status = ANY(%s)
                RETURNING *
                """,
                (call_id, sorted(s.value for s in DIALED_STATUSES)),
            )
            row = await cur.fetchone()
            if row is not None:
                await conn.execute(
                    "INSERT INTO call_events (call_id, at, type, data) "
                    "VALUES (%s, now(), 'cancel.requested', '{}')",
                    (call_id,),
                )
                return row
        return await self.get(call_id)

    async def list_page(
        self, *, campaign: UUID | None, status: CallStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[Row], str | None]:
        """Keyset pages in arrival order: a cursor stays right however many calls arrive."""
        after = decode_cursor(cursor)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT * FROM calls
                WHERE (%(campaign)s::uuid IS NULL OR campaign_id = %(campaign)s)
                  AND (%(status)s::text IS NULL OR status = %(status)s)
                  AND (%(at)s::timestamptz IS NULL OR (created_at, id) > (%(at)s, %(id)s))
                ORDER BY created_at, id LIMIT %(limit)s
                """,
                {
                    "campaign": campaign,
                    "status": status.value if status is not None else None,
                    "at": after[0] if after else None,
                    "id": after[1] if after else None,
                    "limit": limit + 1,
                },
            )
            rows = await cur.fetchall()
        return page(rows, limit)
