"""Use cases behind /v1/campaigns and /voice/bulk."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol
from uuid import UUID

import structlog

from orchestrator.domain.calling_hours import CallingWindow
from orchestrator.domain.campaign import (
    BulkRow,
    CampaignDefaults,
    CampaignStatus,
    NewCampaign,
    RowError,
    RowParser,
    Template,
)
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.errors import ValidationFailed
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.requests import CampaignRequest
from orchestrator.domain.retry import RetryPolicy
from orchestrator.domain.segments import TtsMode, speaks_english
from orchestrator.domain.webhooks import StatusCallback
from orchestrator.services.choices import TrunkDirectory, choose_trunk, choose_voice
from orchestrator.services.intake_rows import RowReader, RowTwoWayReader
from orchestrator.services.two_way import SpeechRenderer

log = structlog.get_logger(__name__)
MAX_REPORTED_ERRORS = 100
Row = dict[str, Any]


class RenderQueue(Protocol):
    def enqueue_renders(self, audio_hashes: list[str]) -> None: ...


class IntakeSession(Protocol):
    """One upload's rows, staged as they come; nothing is kept unless `commit` is reached."""

    staged: int

    async def __aenter__(self) -> IntakeSession: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def add(
        self,
        line: int,
        row: BulkRow,
        pieces: Sequence[tuple[str, str]],
        time_zones: tuple[str, ...] | None,
        two_way: tuple[Interaction, StatusCallback | None] | None = None,
    ) -> None:
        """`pieces`: (audio hash, text) of what the call plays, in order; `two_way`: the row's
        own (None: the campaign's defaults)."""
        ...

    async def commit(self) -> tuple[int, int]:
        """(calls accepted, audio assets new here: the render planner renders them)."""
        ...


class CampaignRepository(Protocol):
    async def create(self, campaign: NewCampaign) -> Row: ...

    async def get(self, campaign_id: UUID) -> Row: ...

    async def discard_if_empty(self, campaign_id: UUID) -> bool: ...

    async def progress(self, campaign_id: UUID) -> tuple[dict[str, int], float]: ...

    async def renders(self, campaign_id: UUID) -> tuple[int, int]: ...

    async def list_page(self, *, limit: int, cursor: str | None) -> tuple[list[Row], str | None]: ...

    async def set_status(self, campaign_id: UUID, status: CampaignStatus) -> Row: ...

    def intake(self, campaign: Row, created_by: str | None, engine: str) -> IntakeSession: ...


@dataclass
class IntakeReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, error: RowError) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                {"line": line, "field": error.field, "code": error.code, "message": error.message}
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }


class CampaignService:
    def __init__(
        self,
        store: CampaignRepository,
        trunks: TrunkDirectory,
        renders: RenderQueue,
        *,
        engine: str,
        default_voice: str,
        voices: Callable[[], Collection[str]],
    ) -> None:
        self._store = store
        self._trunks = trunks
        self._renders = renders
        self._engine = engine
        self._default_voice = default_voice
        self._voices = voices
        self._speech = SpeechRenderer(engine=engine, voices=voices)

    async def create(self, request: CampaignRequest) -> Row:
        trunk_name = await choose_trunk(self._trunks, request.trunk, field="defaults.trunk")
        voice_name = choose_voice(
            request.voice, self._default_voice, self._voices, field="defaults.tts.voice"
        )
        try:
            template = Template(request.text)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="defaults.tts.text") from exc
        if template.typed and not speaks_english(voice_name):
            raise ValidationFailed(
                f"typed values ({{{{{template.typed[0].name}|{template.typed[0].type.value}}}}}) are spoken "
                f"as English words; voice {voice_name!r} is not English",
                field="defaults.tts.voice",
                code="typed-values-need-english-voice",
            )
        interaction = self._speech.interaction(request.interaction, voice_name, prefix="defaults.")
        row = await self._store.create(
            NewCampaign(
                name=request.name,
                trunk=trunk_name,
                from_=request.from_,
                template=request.text,
                voice=voice_name,
                ring_timeout_s=request.ring_timeout_s,
                cps=request.cps,
                window=request.window,
                expires_at=request.expires_at,
                retry=request.retry or RetryPolicy(),
                created_by=request.created_by,
                interaction=interaction,
                status_callback=request.status_callback,
                tts_mode=request.tts_mode,
            )
        )
        log.info(
            "campaign.created", campaign_id=str(row["id"]), name=request.name, created_by=request.created_by
        )
        return row

    async def intake(
        self,
        campaign_id: UUID,
        rows: AsyncIterator[tuple[int, Any]],
        *,
        created_by: str | None = None,
        destinations: DestinationPolicy | None = None,
        two_way: RowTwoWayReader | None = None,
    ) -> IntakeReport:
        """Validate and stage every row as it streams in; commit all of it at the end.

        `created_by`: the uploading key, recorded on each call; `destinations`: where it may
        call (a row it may not is rejected, destination-not-allowed); `two_way`: what reads a
        row's own two-way fields (None: a row with any is rejected)."""
        campaign = await self._store.get(campaign_id)
        if campaign["status"] == CampaignStatus.CANCELED.value:
            raise ValidationFailed("the campaign is canceled", code="campaign-canceled")
        parser = RowParser(
            CampaignDefaults(
                trunk=campaign["trunk"],
                from_=campaign["from_number"],
                template=Template(campaign["tts_template"]),
                voice=campaign["tts_voice"],
                ring_timeout_s=campaign["ring_timeout_s"],
                mode=TtsMode(campaign["tts_mode"]),
            ),
            await self._trunks.trunk_names(),
            destinations,
        )
        voice = str(campaign["tts_voice"])
        reader = RowReader(
            parser=parser,
            speech=self._speech,
            voice=voice,
            window=(
                CallingWindow(campaign["window_start"], campaign["window_end"])
                if campaign["window_start"] is not None
                else None
            ),
            now=datetime.now(UTC),
            defaults=Interaction.from_json(campaign.get("interaction")),
            callback=StatusCallback.from_json(campaign.get("status_callback")),
            two_way=two_way,
        )
        report = IntakeReport()
        async with self._store.intake(campaign, created_by, self._engine) as intake:
            async for line, raw in rows:
                try:
                    if isinstance(raw, RowError):
                        raise raw
                    staged = reader.read(raw)
                except RowError as error:
                    report.reject(line, error)
                    continue
                await intake.add(line, staged.row, staged.pieces, staged.time_zones, staged.two_way)
            committing = time.monotonic()
            accepted, renders = await intake.commit()
            commit_s = time.monotonic() - committing
        report.accepted = accepted
        report.duplicates = intake.staged - accepted
        log.info(
            "campaign.intake",
            campaign_id=str(campaign_id),
            accepted=report.accepted,
            duplicates=report.duplicates,
            rejected=report.rejected,
            new_audio=renders,
            commit_s=round(commit_s, 2),
            created_by=created_by,
        )
        return report

    async def discard_if_empty(self, campaign_id: UUID) -> None:
        if await self._store.discard_if_empty(campaign_id):
            log.info("campaign.discarded", campaign_id=str(campaign_id), reason="its upload stored nothing")

    async def describe(
        self, campaign_id: UUID
    ) -> tuple[dict[str, Any], dict[str, int], float, tuple[int, int]]:
        """The campaign, its calls by status, its dial pace and its audio (needed, ready)."""
        campaign = await self._store.get(campaign_id)
        counts, pace = await self._store.progress(campaign_id)
        return campaign, counts, pace, await self._store.renders(campaign_id)

    async def page(self, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Campaigns in creation order, `limit` at a time, and the next page's cursor."""
        return await self._store.list_page(limit=limit, cursor=cursor)

    async def set_status(self, campaign_id: UUID, status: CampaignStatus) -> dict[str, Any]:
        """The campaign's new status, at once (one row). A cancel's queued calls are canceled by
        the dispatchers in the background: `describe` shows how far (CancelProgress)."""
        campaign = await self._store.set_status(campaign_id, status)
        log.info("campaign.status", campaign_id=str(campaign_id), status=status.value)
        return campaign
