"""A campaign's bulk intake: one upload is one transaction, all of it or none.

Rows are staged with COPY as they are parsed, then inserted in one statement that skips numbers
the campaign already has. A row with no two-way field of its own stages none: its call takes the
campaign's two-way defaults as parameters of that statement, so a million rows of a two-way
campaign cost what a million plain rows cost. The audio the calls need besides their prompts
(replies, voicemail messages) is staged as rows of its own (no line), once per upload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from psycopg import AsyncConnection, AsyncCopy
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import BulkRow, CampaignStatus
from orchestrator.domain.errors import Busy, Conflict
from orchestrator.domain.interaction import Interaction, Speech
from orchestrator.domain.webhooks import StatusCallback
from orchestrator.persistence.calls import DNC_REASON, two_way_columns
from orchestrator.persistence.db import Pool

Row = dict[str, Any]
TwoWay = tuple[Interaction, StatusCallback | None]
"""A row's own two-way fields, over its campaign's defaults."""

UPLOAD_TURN_WAIT_S = 10.0
"""How long an upload waits for one of the upload connections before 503 too-many-uploads."""
UPLOAD_STATEMENT_TIMEOUT = "15min"
"""The COPY of an upload is one statement as long as the body streams in: the API role's own
statement_timeout (60 s) would cut off a million rows sent over a slow link."""
STAGED_AUDIO_MEMORY = 10_000
"""Extra audio hashes an upload remembers having staged; one staged twice is harmless (the
assets' insert takes each hash once)."""

_STAGE_COLUMNS = (
    "line, to_number, from_number, trunk, tts_text, audio_hash, ring_timeout_s, time_zones, "
    "voice, own_two_way, interaction, extra_audio, status_callback, segments"
)


class Intake:
    """Stages an upload's rows, then stores them on `commit()`; leaving without it keeps nothing."""

    def __init__(self, pool: Pool, campaign: Row, created_by: str | None = None) -> None:
        self._pool = pool
        self._campaign = campaign
        self._created_by = created_by
        self._conn: AsyncConnection[DictRow] | None = None
        self._copy_cm: Any = None
        self._copy: AsyncCopy | None = None
        self._staged_audio: set[str] = set()
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
        await self._conn.execute(f"SET statement_timeout = '{UPLOAD_STATEMENT_TIMEOUT}'")
        await self._conn.execute(
            """
            CREATE TEMP TABLE IF NOT EXISTS intake_stage (
                line int, to_number text, from_number text, trunk text, tts_text text,
                audio_hash text, ring_timeout_s int, time_zones text, voice text,
                own_two_way boolean, interaction text, extra_audio text, status_callback text,
                segments text
            ) ON COMMIT DELETE ROWS
            """
        )
        self._copy_cm = self._conn.cursor().copy(f"COPY intake_stage ({_STAGE_COLUMNS}) FROM STDIN")
        self._copy = await self._copy_cm.__aenter__()
        await self._stage_audio(Interaction.from_json(self._campaign.get("interaction")).speeches())
        return self

    async def add(
        self,
        line: int,
        row: BulkRow,
        pieces: Sequence[tuple[str, str]],
        time_zones: tuple[str, ...] | None,
        two_way: TwoWay | None = None,
    ) -> None:
        """`pieces`: (audio hash, text) of what the call plays, in order; `two_way`: the row's
        own (None: the campaign's defaults)."""
        assert self._copy is not None
        own: tuple[Any, ...] = (False, None, None, None)
        if two_way is not None:
            own = (True, *_text_columns(*two_way))
            await self._stage_audio(two_way[0].speeches())
        await self._stage_audio(pieces)
        audio_hash = pieces[0][0]
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
                None,  # the campaign's voice
                *own,
                ",".join(h for h, _ in pieces) if len(pieces) > 1 else None,
            )
        )
        self.staged += 1

    async def _stage_audio(self, audio: Iterable[Speech | tuple[str, str]]) -> None:
        """The rows of the audio a call plays (its prompt's pieces, its replies, its voicemail
        message): line NULL; a piece of the prompt in the campaign's voice (NULL), the others
        in their own."""
        assert self._copy is not None
        for item in audio:
            audio_hash = item.audio_hash if isinstance(item, Speech) else item[0]
            if audio_hash in self._staged_audio:
                continue
            if len(self._staged_audio) >= STAGED_AUDIO_MEMORY:
                self._staged_audio.clear()
            self._staged_audio.add(audio_hash)
            if isinstance(item, Speech):
                await self._copy.write_row(_audio_row(item.audio_hash, item.text, item.voice))
            else:
                await self._copy.write_row(_audio_row(audio_hash, item[1], None))

    async def commit(self, engine: str, voice: str) -> tuple[int, int]:
        """Insert the staged calls; returns (accepted, audio assets new here). Nothing is
        enqueued: the render planner renders what the calls need ahead of their dialing."""
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
            SELECT DISTINCT ON (audio_hash) audio_hash, %s, coalesce(voice, %s), tts_text
            FROM intake_stage WHERE line IS NULL ORDER BY audio_hash
            ON CONFLICT (hash) DO UPDATE SET status = 'pending', error = NULL, planned_at = NULL,
                failed_renders = 0
                WHERE audio_assets.status = 'failed'
            """,
            (engine, voice),
        )
        new_audio = cur.rowcount
        await conn.execute(
            "INSERT INTO campaign_audio (campaign_id, hash) "
            "SELECT DISTINCT %s::uuid, audio_hash FROM intake_stage WHERE line IS NULL "
            "ON CONFLICT DO NOTHING",
            (self._campaign["id"],),
        )
        accepted = await self._insert_calls(conn, voice)
        await self._record_dnc(conn)
        await conn.commit()
        return accepted, new_audio

    async def _insert_calls(self, conn: AsyncConnection[DictRow], voice: str) -> int:
        campaign = self._campaign
        defaults = two_way_columns(
            Interaction.from_json(campaign.get("interaction")),
            StatusCallback.from_json(campaign.get("status_callback")),
        )
        # created_at steps a microsecond per line so the campaign dials in upload order.
        cur = await conn.execute(
            """
            INSERT INTO calls (id, to_number, from_number, trunk, tts_text, tts_voice, audio_hash,
                               ring_timeout_s, campaign_id, created_at, updated_at, not_before,
                               expires_at, window_start, window_end, time_zones,
                               max_attempts, retry_on, retry_backoff_s, created_by,
                               interaction, extra_audio, status_callback, segments,
                               status, status_reason, ended_at)
            SELECT sespcl_uuid7(), s.to_number, s.from_number, s.trunk, s.tts_text, %(voice)s,
                   s.audio_hash, s.ring_timeout_s, %(campaign)s,
                   now() + s.line * interval '1 microsecond', now(),
                   now() + s.line * interval '1 microsecond', %(expires_at)s, %(window_start)s,
                   %(window_end)s, string_to_array(s.time_zones, ','),
                   %(max_attempts)s, %(retry_on)s, %(retry_backoff_s)s, %(created_by)s,
                   CASE WHEN s.own_two_way THEN s.interaction::jsonb ELSE %(interaction)s END,
                   CASE WHEN s.own_two_way THEN string_to_array(s.extra_audio, ',')
                        ELSE %(extra_audio)s END,
                   CASE WHEN s.own_two_way THEN s.status_callback::jsonb ELSE %(status_callback)s END,
                   string_to_array(s.segments, ','),
                   CASE WHEN d.number IS NULL THEN %(queued)s ELSE %(canceled)s END,
                   CASE WHEN d.number IS NULL THEN NULL ELSE %(dnc_reason)s END,
                   CASE WHEN d.number IS NULL THEN NULL ELSE now() END
            FROM intake_stage s LEFT JOIN dnc d ON d.number = s.to_number
            WHERE s.line IS NOT NULL
            ORDER BY s.line
            ON CONFLICT (campaign_id, to_number) WHERE campaign_id IS NOT NULL DO NOTHING
            """,
            {
                "voice": voice,
                "campaign": campaign["id"],
                "dnc_reason": DNC_REASON,
                "queued": CallStatus.QUEUED.value,
                "canceled": CallStatus.CANCELED.value,
                "expires_at": campaign["expires_at"],
                "window_start": campaign["window_start"],
                "window_end": campaign["window_end"],
                "max_attempts": campaign["max_attempts"],
                "retry_on": campaign["retry_on"],
                "retry_backoff_s": campaign["retry_backoff_s"],
                # One value for the whole upload: a parameter of the INSERT, not a staged column.
                "created_by": self._created_by,
                **defaults,
            },
        )
        return cur.rowcount

    async def _record_dnc(self, conn: AsyncConnection[DictRow]) -> None:
        """The calls just canceled for the do-not-call list get their status event, as every
        final status does. `ended_at = now()` is this transaction's: a line whose call was
        already stored by an earlier upload is not recorded twice."""
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


def _audio_row(audio_hash: str, text: str, voice: str | None) -> tuple[Any, ...]:
    """A stage row that is no call: only its audio (hash, text, voice; None: the campaign's)."""
    return (None, None, None, None, text, audio_hash, None, None, voice, False, None, None, None, None)


def _text_columns(interaction: Interaction, callback: StatusCallback | None) -> tuple[str | None, ...]:
    """A row's own two-way columns as COPY text (the INSERT casts them back)."""
    stored = interaction.to_json()
    hashes = interaction.audio_hashes()
    return (
        None if stored is None else json.dumps(stored, ensure_ascii=False, separators=(",", ":")),
        ",".join(hashes) if hashes else None,
        None
        if callback is None
        else json.dumps(callback.to_json(), ensure_ascii=False, separators=(",", ":")),
    )
