"""A campaign's bulk intake: one upload is one transaction, all of it or none.

Rows are gathered as they are parsed and handed to PostgreSQL a chunk at a time: COPYed into a
stage, then inserted by the statements of persistence/intake_sql.py, which skip numbers the
campaign already has. While PostgreSQL inserts one chunk the next is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import BulkRow, CampaignStatus
from orchestrator.domain.errors import Busy, Conflict
from orchestrator.domain.interaction import Interaction, Speech
from orchestrator.domain.webhooks import StatusCallback
from orchestrator.persistence.calls import DNC_REASON, two_way_columns
from orchestrator.persistence.db import Pool
from orchestrator.persistence.intake_sql import (
    CREATE_STAGE,
    EMPTY_STAGE,
    INSERT_AUDIO,
    INSERT_CALLS,
    INSERT_CAMPAIGN_AUDIO,
    STAGE_COLUMNS,
)

log = structlog.get_logger(__name__)
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

CHUNK_ROWS = 20_000
"""Rows staged and inserted at a time, inside the upload's one transaction: PostgreSQL inserts
one chunk while the next is parsed (the two then use both cores), and the API holds at most two
chunks of rows in memory."""


class Intake:
    """Stages an upload's rows and inserts them a chunk at a time in one transaction; keeps
    them on `commit()`, nothing when left without it."""

    def __init__(self, pool: Pool, campaign: Row, created_by: str | None, engine: str) -> None:
        self._pool = pool
        self._campaign = campaign
        self._created_by = created_by
        self._engine = engine
        self._voice = str(campaign["tts_voice"])
        self._conn: AsyncConnection[DictRow] | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._storing: asyncio.Task[None] | None = None
        self._staged_audio: set[str] = set()
        self.staged = 0
        self.accepted = 0
        self.new_audio = 0

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
        await self._conn.execute(CREATE_STAGE)
        self._stage_audio(Interaction.from_json(self._campaign.get("interaction")).speeches())
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
        own: tuple[Any, ...] = (False, None, None, None)
        if two_way is not None:
            own = (True, *_text_columns(*two_way))
            self._stage_audio(two_way[0].speeches())
        self._stage_audio(pieces)
        self._rows.append(
            (
                line,
                row.to,
                row.from_,
                row.trunk,
                row.text,
                pieces[0][0],
                row.ring_timeout_s,
                ",".join(time_zones) if time_zones else None,
                None,  # the campaign's voice
                *own,
                ",".join(h for h, _ in pieces) if len(pieces) > 1 else None,
            )
        )
        self.staged += 1
        if self.staged % CHUNK_ROWS == 0:
            await self._store_chunk()

    def _stage_audio(self, audio: Iterable[Speech | tuple[str, str]]) -> None:
        """The rows of the audio a call plays (its prompt's pieces, its replies, its voicemail
        message): line NULL; a piece of the prompt in the campaign's voice (NULL), the others
        in their own."""
        for item in audio:
            audio_hash = item.audio_hash if isinstance(item, Speech) else item[0]
            if audio_hash in self._staged_audio:
                continue
            if len(self._staged_audio) >= STAGED_AUDIO_MEMORY:
                self._staged_audio.clear()
            self._staged_audio.add(audio_hash)
            if isinstance(item, Speech):
                self._rows.append(_audio_row(item.audio_hash, item.text, item.voice))
            else:
                self._rows.append(_audio_row(audio_hash, item[1], None))

    async def _store_chunk(self) -> None:
        """Hands the rows gathered so far to PostgreSQL, once the chunk before them is in."""
        rows, self._rows = self._rows, []
        if self._storing is not None:
            await self._storing
        self._storing = asyncio.create_task(self._store(rows))

    async def _store(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        assert conn is not None
        async with conn.cursor().copy(f"COPY intake_stage ({STAGE_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        cur = await conn.execute(INSERT_AUDIO, {"engine": self._engine, "voice": self._voice})
        self.new_audio += max(cur.rowcount, 0)
        await conn.execute(INSERT_CAMPAIGN_AUDIO, {"campaign": self._campaign["id"]})
        cur = await conn.execute(INSERT_CALLS, self._call_columns())
        inserted = await cur.fetchone()
        self.accepted += int(inserted["accepted"]) if inserted else 0
        await conn.execute(EMPTY_STAGE)

    async def commit(self) -> tuple[int, int]:
        """Inserts what is left and keeps the upload; returns (accepted, audio assets new here).
        Nothing is enqueued: the render planner renders what the calls need ahead of dialing."""
        assert self._conn is not None
        await self._store_chunk()
        assert self._storing is not None
        await self._storing
        self._storing = None
        # A cancel that came while the body streamed in wins: lock the campaign and look again.
        cur = await self._conn.execute(
            "SELECT status FROM campaigns WHERE id = %s FOR UPDATE", (self._campaign["id"],)
        )
        current = await cur.fetchone()
        if current is None or current["status"] == CampaignStatus.CANCELED.value:
            raise Conflict(
                "the campaign was canceled during the upload; nothing was stored", code="campaign-canceled"
            )
        await self._conn.commit()
        return self.accepted, self.new_audio

    def _call_columns(self) -> dict[str, Any]:
        campaign = self._campaign
        return {
            "voice": self._voice,
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
            **two_way_columns(
                Interaction.from_json(campaign.get("interaction")),
                StatusCallback.from_json(campaign.get("status_callback")),
            ),
        }

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._conn is not None
        try:
            await self._abandon_chunk()
            await self._conn.rollback()
        finally:
            await self._pool.putconn(self._conn)
            self._conn = None

    async def _abandon_chunk(self) -> None:
        """A chunk still being inserted when the upload fails: its statement is canceled on the
        server and awaited (the connection takes no ROLLBACK while it runs)."""
        storing, self._storing = self._storing, None
        if storing is None:
            return
        assert self._conn is not None
        if not storing.done():
            with contextlib.suppress(psycopg.Error):
                await self._conn.cancel_safe(timeout=5.0)
            await asyncio.wait([storing])
        if not storing.cancelled() and storing.exception() is not None:
            log.info(
                "intake.chunk_abandoned",
                campaign_id=str(self._campaign["id"]),
                error=str(storing.exception()),
            )


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
