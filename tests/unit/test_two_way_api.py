"""Two-way calls through the API's handlers and services, over in-memory stores: what a body asks
is stored as the domain's Interaction (its words hashed as the prompt's would be, their renders
enqueued) and shown back as asked."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.interaction import Interaction
from orchestrator.domain.webhooks import AllowList
from tests.unit.two_way_fakes import audio_key, two_way_api

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
    async with two_way_api() as api:
        status, created = await api.post("/v1/calls", APPOINTMENT)
        assert status == 202, created
        call = api.calls.stored[0]
        confirmed, goodbye = (
            audio_key("Thank you, confirmed.", "en-gb"),
            audio_key("You will not be called again. Goodbye.", "en-us"),
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
    async with two_way_api() as api:
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
        assert voicemail is not None and voicemail.audio_hash == audio_key(message, "en-gb")
        assert created["voicemail"] == {"tts": {"text": message, "voice": "en-gb"}}
        assert created["amd"]["greeting_ms"] == 2500 and created["machine_detection"] == "detect_message_end"

        status, plain = await api.post("/v1/calls", {"to": "+14155552674", "tts": {"text": "Hello."}})
        assert status == 202 and api.calls.stored[1].interaction == Interaction()
        assert api.calls.rows[api.calls.stored[1].id]["interaction"] is None
        assert plain["gather"] is None and plain["status_callback"] is None and plain["hooks"] == {}


async def test_refusals_over_http_name_the_field_and_the_code() -> None:
    async with two_way_api(AllowList.parse("10.9.0.0/16")) as api:
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
