"""Use cases behind /v1/calls: submit, read, list, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import structlog

from orchestrator.domain.audio import SpeechRequest
from orchestrator.domain.call import DIALED_STATUSES, CallStatus, NewCall
from orchestrator.domain.calling_hours import callee_zones
from orchestrator.domain.errors import Conflict, NotFound, ValidationFailed
from orchestrator.domain.requests import CallRequest
from orchestrator.services.choices import TrunkDirectory, choose_trunk, choose_voice
from orchestrator.services.renders import enqueue_renders_stored
from orchestrator.services.two_way import SpeechRenderer

log = structlog.get_logger(__name__)


class CallRepository(TrunkDirectory, Protocol):
    async def create(
        self, call: NewCall, *, engine: str, idempotency_key: str | None, request_hash: str | None
    ) -> Any: ...

    async def get(self, call_id: UUID) -> dict[str, Any] | None: ...

    async def attempts(self, call_id: UUID) -> list[dict[str, Any]]: ...

    async def events(self, call_id: UUID) -> list[dict[str, Any]]: ...

    async def cancel(self, call_id: UUID) -> dict[str, Any] | None: ...

    async def list_page(
        self, *, campaign: UUID | None, status: CallStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...


class RenderQueue(Protocol):
    def enqueue_render(self, audio_hash: str) -> None: ...


def _zones(request: CallRequest) -> tuple[str, ...] | None:
    """The callee's zones its calling window is read in (None: no window)."""
    if request.window is None:
        return None
    try:
        return callee_zones(request.to, request.tz, request.window, datetime.now(UTC))
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="calling_window", code="calling-window-never-opens") from exc


class CallService:
    def __init__(
        self,
        repo: CallRepository,
        renders: RenderQueue,
        *,
        engine: str,
        default_voice: str,
        voices: Callable[[], Collection[str]],
    ) -> None:
        self._repo = repo
        self._renders = renders
        self._engine = engine
        self._default_voice = default_voice
        self._voices = voices
        self._speech = SpeechRenderer(engine=engine, voices=voices)

    async def submit(self, request: CallRequest) -> tuple[dict[str, Any], bool]:
        """Store a call as `queued`; returns (call, created). A replay returns the original.

        A number the asking key may not call is refused (422 destination-not-allowed)."""
        destinations = request.destinations
        refusal = destinations.refusal(request.to) if destinations is not None else None
        if refusal is not None:
            raise ValidationFailed(refusal, field="to", code="destination-not-allowed")
        trunk_name = await choose_trunk(self._repo, request.trunk, field="trunk")
        voice_name = choose_voice(request.voice, self._default_voice, self._voices, field="tts.voice")
        speech = SpeechRequest(text=request.text, voice=voice_name, engine=self._engine)
        interaction = self._speech.interaction(request.interaction, voice_name)
        call = NewCall(
            id=uuid.uuid4(),
            to=request.to,
            from_=request.from_,
            trunk=trunk_name,
            text=request.text,
            voice=voice_name,
            audio_key=speech.key(),
            ring_timeout_s=request.ring_timeout_s,
            metadata=request.metadata,
            not_before=request.not_before,
            expires_at=request.expires_at,
            window=request.window,
            time_zones=_zones(request),
            retry=request.retry,
            created_by=request.created_by,
            interaction=interaction,
            status_callback=request.status_callback,
        )
        result = await self._repo.create(
            call,
            engine=self._engine,
            idempotency_key=request.idempotency_key,
            request_hash=request.request_hash,
        )
        if result.idempotency_conflict:
            raise Conflict(
                "this Idempotency-Key was used with a different request body",
                field="Idempotency-Key",
                code="idempotency-key-reused",
            )
        for audio_hash in result.renders:
            await enqueue_renders_stored(self._renders.enqueue_render, audio_hash)
        if result.created:
            extra = {"extra_audio": interaction.audio_hashes()} if not interaction.is_plain else {}
            log.info(
                "call.queued", call_id=str(call.id), trunk=trunk_name, audio_hash=call.audio_key, **extra
            )
        return result.call, result.created

    async def get(self, call_id: UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        call = await self._repo.get(call_id)
        if call is None:
            raise NotFound(f"no call {call_id}", code="no-such-call")
        return call, await self._repo.attempts(call_id)

    async def events(self, call_id: UUID) -> list[dict[str, Any]]:
        if await self._repo.get(call_id) is None:
            raise NotFound(f"no call {call_id}", code="no-such-call")
        return await self._repo.events(call_id)

    async def page(
        self, *, campaign: UUID | None, status: CallStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Calls in arrival order, `limit` at a time, and the cursor of the next page (None: the
        last one)."""
        return await self._repo.list_page(campaign=campaign, status=status, limit=limit, cursor=cursor)

    async def cancel(self, call_id: UUID) -> dict[str, Any]:
        call = await self._repo.cancel(call_id)
        if call is None:
            raise NotFound(f"no call {call_id}", code="no-such-call")
        status = CallStatus(call["status"])
        # Canceled now, or flagged for the dispatcher to hang up; anything else is refused.
        if status is not CallStatus.CANCELED and status not in DIALED_STATUSES:
            raise Conflict(f"the call is already {call['status']}", field=None, code="call-already-final")
        log.info("call.cancel", call_id=str(call_id), status=call["status"])
        return call
