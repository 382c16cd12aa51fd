"""A campaign's two-way defaults through the API's handlers and services, over in-memory stores:
they reach every row of an upload, a row may replace any of them (NDJSON, CSV), and a refusal
names the defaults' path."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.domain.webhooks import ALL_EVENTS
from tests.unit.two_way_fakes import audio_key, two_way_api

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
    async with two_way_api() as api:
        status, campaign = await api.post("/v1/campaigns", CAMPAIGN)
        assert status == 201, campaign
        defaults = api.campaigns.created[0].interaction
        reply = defaults.on_digits["1"].speech
        assert reply is not None and reply.audio_hash == audio_key(
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
        assert grace_reply is not None and grace_reply.audio_hash == audio_key("See you Tuesday.", "en-us")
        assert "9" not in grace_two_way.on_digits  # a row's field replaces the default's whole
        assert grace_callback == api.campaigns.created[0].status_callback
        ken_two_way, _ = ken_own
        assert ken_two_way.dialplan_context == "sespcl-custom-survey" and ken_two_way.gather is None
        assert ken_two_way.machine_detection is defaults.machine_detection


async def test_csv_cells_hold_the_two_way_fields_as_json() -> None:
    async with two_way_api() as api:
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
    async with two_way_api() as api:
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
