"""CallService.submit: a CallRequest becomes the NewCall stored, with what the request left open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from orchestrator.domain.call import NewCall
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.errors import Conflict, ValidationFailed
from orchestrator.domain.requests import CallRequest
from orchestrator.persistence.calls import assets_of
from orchestrator.services.calls import CallRepository, CallService
from tests.unit.api_fakes import OneTrunk


@dataclass
class Created:
    call: dict[str, Any]
    created: bool = True
    renders: tuple[str, ...] = ()
    idempotency_conflict: bool = False


class Calls(OneTrunk):
    def __init__(self, conflict: bool = False) -> None:
        self.stored: list[tuple[NewCall, dict[str, Any]]] = []
        self.conflict = conflict

    async def create(self, call: NewCall, **options: Any) -> Created:
        self.stored.append((call, options))
        # A fresh database: every audio the call needs is new, so each is to render.
        renders = tuple(audio_hash for audio_hash, _, _ in assets_of(call))
        return Created({"id": call.id}, renders=renders, idempotency_conflict=self.conflict)


class Renders:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def enqueue_render(self, audio_hash: str) -> None:
        self.asked.append(audio_hash)


def _service(repo: Calls, renders: Renders) -> CallService:
    # The fake stores what `submit` stores; the reads it lacks are never reached here.
    return CallService(
        cast(CallRepository, repo), renders, engine="espeak", default_voice="en-us", voices=lambda: {"en-us"}
    )


async def test_the_request_is_stored_with_the_defaults_it_left_open() -> None:
    repo, renders = Calls(), Renders()
    request = CallRequest(
        to="+14155550123",
        text="hello",
        ring_timeout_s=20,
        created_by="ops",
        idempotency_key="k",
        request_hash="h",
    )
    call, created = await _service(repo, renders).submit(request)
    stored, options = repo.stored[0]
    assert created and call == {"id": stored.id}
    assert (stored.to, stored.trunk, stored.voice) == ("+14155550123", "demo", "en-us")
    assert stored.ring_timeout_s == 20
    assert stored.created_by == "ops" and stored.time_zones is None
    assert options == {"engine": "espeak", "idempotency_key": "k", "request_hash": "h"}
    assert renders.asked == [stored.audio_key]


async def test_refusals() -> None:
    premium = CallRequest(
        to="+19005550123", text="hi", ring_timeout_s=30, destinations=DestinationPolicy(premium=False)
    )
    with pytest.raises(ValidationFailed) as refused:
        await _service(Calls(), Renders()).submit(premium)
    assert (refused.value.code, refused.value.field) == ("destination-not-allowed", "to")
    with pytest.raises(Conflict) as reused:
        await _service(Calls(conflict=True), Renders()).submit(
            CallRequest(to="+14155550123", text="hi", ring_timeout_s=30, idempotency_key="k")
        )
    assert reused.value.code == "idempotency-key-reused"
