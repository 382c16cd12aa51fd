"""Two-way calls through the API's handlers and services, over in-memory stores: what a body asks
is stored as the domain's Interaction (its words hashed as the prompt's would be, their renders
enqueued) and shown back as asked; a campaign's defaults reach every row, and a row may replace
them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
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
from orchestrator.domain.webhooks import ALL_EVENTS, AllowList, StatusCallback
from orchestrator.persistence.calls import CreateResult, assets_of
from orchestrator.services.calls import CallRepository, CallService
from orchestrator.services.campaigns import CampaignRepository, CampaignService
from orchestrator.services.keys import Authenticator
from tests.unit.api_fakes import OneTrunk, api_deps

KEY = "two-way-test-key-0123456789abcdef"
ENGINE = "espeak-ng"
VOICES = frozenset({"en-us", "en-gb", "fr-fr"})
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _key(text: str, voice: str) -> str:
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
        audio_hash: str,
        time_zones: tuple[str, ...] | None,
        two_way: tuple[Interaction, StatusCallback | None] | None = None,
    ) -> None:
        self.added.append((row, audio_hash, two_way))
        self.staged += 1

    async def commit(self, engine: str, voice: str) -> tuple[int, list[str]]:
        return self.staged, []


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
        }
        self.rows[campaign_id] = row
        return row

    async def get(self, campaign_id: uuid.UUID) -> dict[str, Any]:
        return self.rows[campaign_id]

    async def progress(self, campaign_id: uuid.UUID) -> tuple[dict[str, int], float]:
        return {}, 0.0

    async def discard_if_empty(self, campaign_id: uuid.UUID) -> bool:
        return False

    def intake(self, campaign: dict[str, Any], created_by: str | None = None) -> MemoryIntake:
        self.intakes.append(MemoryIntake())
        return self.intakes[-1]


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    calls: MemoryCalls
    campaigns: MemoryCampaigns
    renders: Renders

    async def post(self, path: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
        data = body if isinstance(body, str) else json.dumps(body)
        response = await self.client.post(
            path, data=data, headers={"Authorization": f"Bearer {KEY}", "Content-Type": content_type}
        )
        return response.status, await response.json()

    async def get(self, path: str) -> Any:
        response = await self.client.get(path, headers={"Authorization": f"Bearer {KEY}"})
        assert response.status == 200, await response.text()
        return await response.json()


def _fault(name: str) -> Exception:
    return AssertionError(f"not expected here: {name}")


@asynccontextmanager
async def _api(allow: AllowList | None = None) -> AsyncIterator[Api]:
    calls, campaigns, renders = MemoryCalls(), MemoryCampaigns(), Renders()
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
    )
    async with TestClient(TestServer(create_app(deps))) as client:
        yield Api(client, calls, campaigns, renders)


APPOINTMENT: dict[str, Any] = {
    "to": "+14155552671",
    "tts": {
        "text": "Hello Maria, your cleaning at Bayview Dental is tomorrow at 9:30. "
        "Press 1 to confirm, 9 to stop these calls."
    },
    "gather": {"num_digits": 1, "timeout_s": 6},
    "on_digits": {
        "9": {"action": "dnc", "tts": {"text": "You will not be called again. Goodbye."}},
        "1": {"tts": {"text": "Thank you, confirmed.", "voice": "en-gb"}},
    },
    "status_callback": {
        "url": "https://hooks.bayview-dental.example/sespcl",
        "events": ["digits", "completed"],
    },
}


async def test_a_reminder_stores_its_replies_as_rendered_audio_and_shows_them_as_asked() -> None:
    async with _api() as api:
        status, created = await api.post("/v1/calls", APPOINTMENT)
        assert status == 202, created
        call = api.calls.stored[0]
        confirmed, goodbye = (
            _key("Thank you, confirmed.", "en-gb"),
            _key("You will not be called again. Goodbye.", "en-us"),
        )
        replies = call.interaction.on_digits
        assert replies["1"].speech is not None and replies["1"].speech.audio_hash == confirmed
        assert (
            replies["9"].speech is not None and replies["9"].speech.audio_hash == goodbye
        )  # the call's voice
        assert replies["9"].dnc and not replies["1"].dnc
        assert call.interaction.audio_hashes() == [confirmed, goodbye]
        assert sorted(api.renders.asked) == sorted([call.audio_key, confirmed, goodbye])

        shown = await api.get(f"/v1/calls/{created['id']}")
        assert shown == created | {"attempts": []}
        assert shown["gather"] == {"num_digits": 1, "timeout_s": 6, "finish_on_key": "#", "retries": 1}
        assert shown["on_digits"] == {
            "1": {"tts": {"text": "Thank you, confirmed.", "voice": "en-gb"}, "action": None},
            "9": {
                "tts": {"text": "You will not be called again. Goodbye.", "voice": "en-us"},
                "action": "dnc",
            },
        }
        assert shown["status_callback"] == {
            "url": "https://hooks.bayview-dental.example/sespcl",
            "events": ["completed", "digits"],
        }
        assert (shown["digits"], shown["answered_by"], shown["hooks"]) == (None, None, {})
        assert (shown["machine_detection"], shown["amd"], shown["voicemail"], shown["dialplan"]) == (
            None,
        ) * 4

        # The same words again: already asked for, so no second render.
        api.renders.asked.clear()
        status, _ = await api.post("/v1/calls", APPOINTMENT | {"to": "+14155552672"})
        assert status == 202 and api.renders.asked == []


async def test_an_outage_notice_for_voicemail_and_a_plain_call_beside_it() -> None:
    async with _api() as api:
        message = "This is Northside Power. Service on Elm Street is off tonight from midnight to 4."
        status, created = await api.post(
            "/v1/calls",
            {
                "to": "+14155552673",
                "tts": {
                    "text": "Northside Power: your service is off tonight from midnight to 4.",
                    "voice": "en-gb",
                },
                "machine_detection": "detect_message_end",
                "amd": {"greeting_ms": 2500},
                "voicemail": {"tts": {"text": message}},
            },
        )
        assert status == 202, created
        voicemail = api.calls.stored[0].interaction.voicemail
        assert voicemail is not None and voicemail.audio_hash == _key(message, "en-gb")
        assert created["voicemail"] == {"tts": {"text": message, "voice": "en-gb"}}
        assert created["amd"]["greeting_ms"] == 2500 and created["machine_detection"] == "detect_message_end"

        status, plain = await api.post("/v1/calls", {"to": "+14155552674", "tts": {"text": "Hello."}})
        assert status == 202 and api.calls.stored[1].interaction == Interaction()
        assert api.calls.rows[api.calls.stored[1].id]["interaction"] is None
        assert plain["gather"] is None and plain["status_callback"] is None and plain["hooks"] == {}


async def test_refusals_over_http_name_the_field_and_the_code() -> None:
    async with _api(AllowList.parse("10.9.0.0/16")) as api:
        cases: list[tuple[dict[str, Any], str, str]] = [
            (
                {"on_digits": {"1": {"tts": {"text": "Ok.", "voice": "klingon"}}}},
                "on_digits.1.tts.voice",
                "unknown-voice",
            ),
            ({"dialplan": {"context": "sespcl-custom-survey"}}, "dialplan", "dialplan-excludes-gather"),
            (
                {"status_callback": {"url": "http://10.1.2.3/hooks"}},
                "status_callback.url",
                "callback-url-refused",
            ),
        ]
        for fields, field_path, code in cases:
            status, body = await api.post("/v1/calls", APPOINTMENT | fields)
            assert (status, body["error"]["field"], body["error"]["code"]) == (422, field_path, code), body
        status, _ = await api.post(
            "/v1/calls", APPOINTMENT | {"status_callback": {"url": "http://10.9.4.4:8080/h"}}
        )
        assert status == 202  # the operator's network, allowed
        assert len(api.calls.stored) == 1


CAMPAIGN: dict[str, Any] = {
    "name": "Cleaning reminders, December",
    "defaults": {
        "tts": {"text": "Hello {{name}}, your cleaning is on {{day}}. Press 1 to confirm.", "voice": "fr-fr"},
        "gather": {"num_digits": 1},
        "on_digits": {"1": {"tts": {"text": "Merci, à bientôt."}}, "9": {"action": "dnc"}},
        "machine_detection": "enable",
        "status_callback": {"url": "https://hooks.bayview-dental.example/campaign"},
    },
}


async def test_a_campaigns_defaults_reach_its_rows_and_a_row_may_replace_them() -> None:
    async with _api() as api:
        status, campaign = await api.post("/v1/campaigns", CAMPAIGN)
        assert status == 201, campaign
        defaults = api.campaigns.created[0].interaction
        reply = defaults.on_digits["1"].speech
        assert reply is not None and reply.audio_hash == _key(
            "Merci, à bientôt.", "fr-fr"
        )  # the campaign's voice
        assert campaign["defaults"]["on_digits"]["9"] == {"tts": None, "action": "dnc"}
        assert campaign["defaults"]["status_callback"]["events"] == sorted(e.value for e in ALL_EVENTS)
        assert campaign["defaults"]["machine_detection"] == "enable"

        survey = {"context": "sespcl-custom-survey"}
        rows = [
            {"to": "+14155552680", "name": "Ada", "day": "Monday"},
            {"to": "+14155552681", "name": "Grace", "day": "Tuesday", "machine_detection": None,
             "on_digits": {"1": {"tts": {"text": "See you Tuesday.", "voice": "en-us"}}}},
            {"to": "+14155552682", "name": "Ken", "day": "Friday", "gather": None, "on_digits": None,
             "dialplan": survey},
            {"to": "+14155552683", "name": "Linus", "day": "Friday", "dialplan": survey},
            {"to": "+14155552684", "name": "Barbara", "day": "Friday",
             "status_callback": {"url": "http://127.0.0.1/"}},
            {"to": "+14155552685", "name": "Edsger", "day": "Friday",
             "on_digits": {"1": {"action": "rm -rf"}}},
            {"to": "+14155552686", "name": "Joan", "day": "Friday",
             "on_digits": {"1": {"tts": {"text": "Merci {{name}}"}}}},
        ]  # fmt: skip
        status, report = await api.post(
            f"/v1/campaigns/{campaign['id']}/calls",
            "\n".join(json.dumps(r, ensure_ascii=False) for r in rows),
            "application/x-ndjson",
        )
        assert status == 202, report
        assert (report["accepted"], report["rejected"]) == (3, 4)
        assert [(e["line"], e["field"], e["code"]) for e in report["errors"]] == [
            (4, "dialplan", "dialplan-excludes-gather"),
            (5, "status_callback.url", "callback-url-refused"),
            (6, "on_digits.1.action", "invalid-field"),
            (7, "on_digits", "placeholders-not-supported"),
        ]
        (ada, _, ada_own), (grace, _, grace_own), (ken, _, ken_own) = api.campaigns.intakes[0].added
        assert ada.to == "+14155552680" and ada_own is None  # the defaults, with no work of its own
        assert grace_own is not None and ken_own is not None
        grace_two_way, grace_callback = grace_own
        assert grace_two_way.machine_detection is None and grace_two_way.gather == defaults.gather
        grace_reply = grace_two_way.on_digits["1"].speech
        assert grace_reply is not None and grace_reply.audio_hash == _key("See you Tuesday.", "en-us")
        assert "9" not in grace_two_way.on_digits  # a row's field replaces the default's whole
        assert grace_callback == api.campaigns.created[0].status_callback
        ken_two_way, _ = ken_own
        assert ken_two_way.dialplan_context == "sespcl-custom-survey" and ken_two_way.gather is None
        assert ken_two_way.machine_detection is defaults.machine_detection


async def test_csv_cells_hold_the_two_way_fields_as_json() -> None:
    async with _api() as api:
        _, campaign = await api.post("/v1/campaigns", CAMPAIGN)
        csv = (
            "to,name,day,machine_detection,gather,on_digits,dialplan\n"
            '+14155552690,Alan,Monday,null,null,null,"{""context"": ""sespcl-custom-survey""}"\n'
            '+14155552691,Radia,Monday,detect_message_end,"{""num_digits"": 2}",'
            '"{""12"": {""action"": ""dnc""}}",\n'
            "+14155552692,Barbara,Monday,,{not json},,\n"
        )
        status, report = await api.post(f"/v1/campaigns/{campaign['id']}/calls", csv, "text/csv")
        assert status == 202, report
        assert report["accepted"] == 2 and [(e["line"], e["field"]) for e in report["errors"]] == [
            (4, "gather")
        ]
        (_, _, alan), (_, _, radia) = api.campaigns.intakes[0].added
        assert alan is not None and alan[0].dialplan_context == "sespcl-custom-survey"
        assert alan[0].machine_detection is None and alan[0].gather is None
        assert radia is not None and radia[0].on_digits["12"].dnc and radia[0].gather is not None
        assert radia[0].gather.num_digits == 2


async def test_a_campaigns_refusals_carry_the_defaults_path() -> None:
    async with _api() as api:
        for fields, field_path, code in (
            (
                {"voicemail": {"tts": {"text": "Call us."}}},
                "defaults.voicemail",
                "voicemail-without-message-end",
            ),
            (
                {"on_digits": {"1": {"tts": {"text": "Ok.", "voice": "xx-yy"}}}},
                "defaults.on_digits.1.tts.voice",
                "unknown-voice",
            ),
            (
                {"status_callback": {"url": "file:///etc/passwd"}},
                "defaults.status_callback.url",
                "callback-url-refused",
            ),
        ):
            body = CAMPAIGN | {"defaults": CAMPAIGN["defaults"] | fields}
            status, refused = await api.post("/v1/campaigns", body)
            assert (status, refused["error"]["field"], refused["error"]["code"]) == (422, field_path, code), (
                refused
            )
        assert api.campaigns.created == []
