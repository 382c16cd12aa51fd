"""In-memory stand-ins for the stores behind two-way requests, and the API over them (the real
handlers and services, the bootstrap key)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, cast

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.domain.audio import SpeechRequest
from orchestrator.domain.call import NewCall
from orchestrator.domain.campaign import BulkRow, CampaignStatus, NewCampaign
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.domain.webhooks import AllowList, StatusCallback
from orchestrator.persistence.calls import CreateResult, assets_of
from orchestrator.services.calls import CallRepository, CallService
from orchestrator.services.campaigns import CampaignRepository, CampaignService
from orchestrator.services.idempotency import IdempotentRequests
from orchestrator.services.keys import Authenticator
from tests.unit.api_fakes import OneTrunk, api_deps
from tests.unit.idempotency_fakes import MemoryIdempotency

KEY = "two-way-test-key-0123456789abcdef"
ENGINE = "espeak-ng"
VOICES = frozenset({"en-us", "en-gb", "fr-fr"})
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def audio_key(text: str, voice: str) -> str:
    return SpeechRequest(text=text, voice=voice, engine=ENGINE).key()


class NoKeys:
    async def by_id(self, ident: str) -> dict[str, Any] | None:
        return None

    async def touch(self, ident: str) -> None:
        return None


class Renders:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def enqueue_render(self, audio_hash: str) -> None:
        self.asked.append(audio_hash)

    def enqueue_renders(self, audio_hashes: list[str]) -> None:
        self.asked.extend(audio_hashes)


def _row_of(call: NewCall) -> dict[str, Any]:
    """The calls row a database would hold for it, before it is dialed."""
    stored = call.interaction.to_json()
    return {
        "id": call.id,
        "to_number": call.to,
        "from_number": call.from_,
        "trunk": call.trunk,
        "status": "queued",
        "status_reason": None,
        "tts_text": call.text,
        "tts_voice": call.voice,
        "ring_timeout_s": call.ring_timeout_s,
        "created_at": NOW,
        "updated_at": NOW,
        "answered_at": None,
        "ended_at": None,
        "hangup_cause": None,
        "hangup_cause_text": None,
        "metadata": call.metadata,
        "interaction": None if stored is None else json.loads(json.dumps(stored)),
        "extra_audio": call.interaction.audio_hashes() or None,
        "status_callback": None if call.status_callback is None else call.status_callback.to_json(),
        "digits": None,
        "answered_by": None,
        "hooks": None,
    }


class MemoryCalls(OneTrunk):
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.stored: list[NewCall] = []
        self.assets: set[str] = set()

    async def create(self, call: NewCall, **options: Any) -> CreateResult:
        self.stored.append(call)
        self.rows[call.id] = _row_of(call)
        # Only the request that inserts an asset row enqueues its render.
        new = tuple(h for h, _, _ in assets_of(call) if h not in self.assets)
        self.assets.update(new)
        return CreateResult(self.rows[call.id], created=True, renders=new)

    async def get(self, call_id: uuid.UUID) -> dict[str, Any] | None:
        return self.rows.get(call_id)

    async def attempts(self, call_id: uuid.UUID) -> list[dict[str, Any]]:
        return []


@dataclass
class MemoryIntake:
    added: list[tuple[BulkRow, str, tuple[Interaction, StatusCallback | None] | None]] = field(
        default_factory=list
    )
    pieces: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    """(audio hash, text) of each row's pieces, in order."""
    staged: int = 0

    async def __aenter__(self) -> MemoryIntake:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def add(
        self,
        line: int,
        row: BulkRow,
        pieces: Sequence[tuple[str, str]],
        time_zones: tuple[str, ...] | None,
        two_way: tuple[Interaction, StatusCallback | None] | None = None,
    ) -> None:
        self.added.append((row, pieces[0][0], two_way))
        self.pieces.append(tuple(pieces))
        self.staged += 1

    async def commit(self) -> tuple[int, int]:
        return self.staged, 0


class MemoryCampaigns:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.created: list[NewCampaign] = []
        self.intakes: list[MemoryIntake] = []

    async def create(self, campaign: NewCampaign) -> dict[str, Any]:
        self.created.append(campaign)
        callback = campaign.status_callback
        campaign_id = uuid.uuid4()
        row: dict[str, Any] = {
            "id": campaign_id,
            "name": campaign.name,
            "status": CampaignStatus.ACTIVE.value,
            "trunk": campaign.trunk,
            "from_number": campaign.from_,
            "tts_template": campaign.template,
            "tts_voice": campaign.voice,
            "ring_timeout_s": campaign.ring_timeout_s,
            "cps": campaign.cps,
            "window_start": None,
            "window_end": None,
            "created_at": NOW,
            "updated_at": NOW,
            "interaction": campaign.interaction.to_json(),
            "status_callback": None if callback is None else callback.to_json(),
            "tts_mode": campaign.tts_mode.value,
        }
        self.rows[campaign_id] = row
        return row

    async def get(self, campaign_id: uuid.UUID) -> dict[str, Any]:
        return self.rows[campaign_id]

    async def progress(self, campaign_id: uuid.UUID) -> tuple[dict[str, int], float]:
        return {}, 0.0

    async def renders(self, campaign_id: uuid.UUID) -> tuple[int, int]:
        hashes = {h for intake in self.intakes for row in intake.pieces for h, _ in row}
        return len(hashes), 0

    async def discard_if_empty(self, campaign_id: uuid.UUID) -> bool:
        return False

    def intake(self, campaign: dict[str, Any], created_by: str | None, engine: str) -> MemoryIntake:
        self.intakes.append(MemoryIntake())
        return self.intakes[-1]


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    calls: MemoryCalls
    campaigns: MemoryCampaigns
    renders: Renders
    idempotency: MemoryIdempotency

    async def post(
        self, path: str, body: Any, content_type: str = "application/json", *, key: str | None = None
    ) -> tuple[int, Any]:
        """`key`: the Idempotency-Key header (None: none)."""
        data = body if isinstance(body, str) else json.dumps(body)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": content_type}
        if key is not None:
            headers["Idempotency-Key"] = key
        response = await self.client.post(path, data=data, headers=headers)
        return response.status, await response.json()

    async def get(self, path: str) -> Any:
        response = await self.client.get(path, headers={"Authorization": f"Bearer {KEY}"})
        assert response.status == 200, await response.text()
        return await response.json()


def _fault(name: str) -> Exception:
    return AssertionError(f"not expected here: {name}")


@asynccontextmanager
async def two_way_api(allow: AllowList | None = None) -> AsyncIterator[Api]:
    calls, campaigns, renders = MemoryCalls(), MemoryCampaigns(), Renders()
    idempotency = MemoryIdempotency()
    bootstrap = Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None)
    deps = api_deps(
        _fault,
        calls=CallService(
            cast(CallRepository, calls), renders, engine=ENGINE, default_voice="en-us", voices=lambda: VOICES
        ),
        campaigns=CampaignService(
            cast(CampaignRepository, campaigns),
            calls,
            renders,
            engine=ENGINE,
            default_voice="en-us",
            voices=lambda: VOICES,
        ),
        keys=Authenticator(cast(Any, NoKeys()), bootstrap_key=KEY, bootstrap=bootstrap, cache_s=2.0),
        webhook_allow=allow or AllowList(),
        idempotency=IdempotentRequests(idempotency),
    )
    async with TestClient(TestServer(create_app(deps))) as client:
        yield Api(client, calls, campaigns, renders, idempotency)
