"""The two-way fields of a call body (api/two_way.py): what is accepted, what becomes of it, and
each refusal's field and code."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.api.parsing import validation_error
from orchestrator.api.schemas import CallIn, CampaignIn
from orchestrator.api.two_way import (
    TWO_WAY_FIELDS,
    EventName,
    interaction_shape,
    validation_context,
)
from orchestrator.domain.campaign import ROW_TWO_WAY
from orchestrator.domain.interaction import (
    AmdTuning,
    DigitReply,
    Gather,
    Interaction,
    MachineDetection,
    Speech,
)
from orchestrator.domain.requests import ReplyAsk, SpeechAsk
from orchestrator.domain.webhooks import ALL_EVENTS, AllowList, WebhookEvent

REMINDER = {
    "to": "+14155552671",
    "tts": {
        "text": "Hello Maria, this is Bayview Dental: your cleaning is tomorrow at 9:30. Press 1 to confirm."
    },
}


def _call(allow: AllowList | None = None, **fields: Any) -> CallIn:
    context = validation_context(allow) if allow is not None else None
    return CallIn.model_validate(REMINDER | fields, context=context)


def _refusal(allow: AllowList | None = None, **fields: Any) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as refused:
        _call(allow, **fields)
    error = validation_error(refused.value)
    assert error.status == 422
    return error.field, error.code


def test_an_appointment_reminder_with_press_1_and_press_9_for_dnc() -> None:
    parsed = _call(
        gather={"num_digits": 1, "timeout_s": 6},
        on_digits={
            "9": {"action": "dnc", "tts": {"text": "You will not be called again. Goodbye."}},
            "1": {"tts": {"text": "Thank you, your appointment is confirmed.", "voice": "en-gb"}},
        },
        status_callback={
            "url": "https://hooks.bayview-dental.example/sespcl",
            "events": ["digits", "completed"],
        },
    )
    asked = parsed.interaction_request()
    assert asked.gather == Gather(num_digits=1, timeout_s=6, finish_on_key="#", retries=1)
    assert list(asked.on_digits) == ["1", "9"]  # one order whatever the body's
    assert asked.on_digits["9"] == ReplyAsk(
        speech=SpeechAsk(text="You will not be called again. Goodbye."), dnc=True
    )
    assert asked.on_digits["1"].speech == SpeechAsk(
        text="Thank you, your appointment is confirmed.", voice="en-gb"
    )
    assert not asked.on_digits["1"].dnc
    callback = parsed.callback()
    assert callback is not None and callback.events == {WebhookEvent.DIGITS, WebhookEvent.COMPLETED}


def test_an_outage_notice_left_on_voicemail_after_the_beep() -> None:
    parsed = _call(
        machine_detection="detect_message_end",
        amd={"greeting_ms": 2500, "total_analysis_ms": 6000},
        voicemail={
            "tts": {"text": "This is Northside Power: service on Elm Street is off tonight from midnight."}
        },
        status_callback={"url": "https://status.northside-power.example/hooks/calls"},
    )
    asked = parsed.interaction_request()
    assert asked.machine_detection is MachineDetection.DETECT_MESSAGE_END
    assert asked.amd == AmdTuning(greeting_ms=2500, total_analysis_ms=6000)
    assert asked.voicemail is not None and asked.voicemail.voice is None
    callback = parsed.callback()
    assert callback is not None and callback.events == ALL_EVENTS  # every event when none are named


def test_a_survey_in_the_operators_context() -> None:
    asked = _call(
        dialplan={"context": "sespcl-custom-survey"}, machine_detection="enable"
    ).interaction_request()
    assert asked.dialplan_context == "sespcl-custom-survey" and asked.gather is None


def test_a_plain_body_asks_nothing_and_hashes_as_before_two_way_calls() -> None:
    body = {
        "to": "+14155550123",
        "tts": {"text": "Your appointment is tomorrow at 9."},
        "metadata": {"customer": 42},
        "max_attempts": 2,
        "retry_on": ["busy"],
    }
    parsed = CallIn.model_validate(body)
    assert parsed.interaction_request().gather is None and parsed.callback() is None
    # The hash main computed for this body before the two-way fields existed: a key replayed
    # across the upgrade still matches its call.
    assert parsed.canonical_hash() == "18881ac6b140e5a5ed9fcace442c636a301c0380efeaa834898f99d5fbaa1f41"


def test_the_canonical_hash_holds_the_two_way_fields_and_not_their_key_order() -> None:
    replies = {"1": {"tts": {"text": "Confirmed."}}, "9": {"action": "dnc"}}
    one = _call(gather={"num_digits": 1}, on_digits=replies)
    reordered = _call(gather={"num_digits": 1}, on_digits=dict(reversed(list(replies.items()))))
    other = _call(gather={"num_digits": 1}, on_digits=replies | {"9": {"action": None}})
    plain = _call()
    assert one.canonical_hash() == reordered.canonical_hash()
    assert len({one.canonical_hash(), other.canonical_hash(), plain.canonical_hash()}) == 3
    assert _call(status_callback={"url": "https://a.example/x"}).canonical_hash() != plain.canonical_hash()


HOSTILE: list[tuple[dict[str, Any], str, str]] = [
    ({"gather": {"num_digits": 1, "press": "1"}}, "gather.press", "unknown-field"),
    ({"gather": {"num_digits": "1"}}, "gather.num_digits", "invalid-field"),
    ({"gather": {"num_digits": 33}}, "gather.num_digits", "invalid-field"),
    ({"gather": {"num_digits": 1, "timeout_s": 0}}, "gather.timeout_s", "invalid-field"),
    ({"gather": {"num_digits": 1, "finish_on_key": "##"}}, "gather.finish_on_key", "invalid-field"),
    ({"gather": {"num_digits": 1, "retries": 4}}, "gather.retries", "invalid-field"),
    ({"gather": [1]}, "gather", "invalid-field"),
    ({"on_digits": {"1": {"tts": {"text": "Thanks."}}}}, "on_digits", "on-digits-without-gather"),
    (
        {"gather": {"num_digits": 32}, "on_digits": {"1" * 33: {"action": "dnc"}}},
        "on_digits",
        "invalid-digit-key",
    ),
    (
        {"gather": {"num_digits": 4}, "on_digits": {"1;Hangup": {"action": "dnc"}}},
        "on_digits",
        "invalid-digit-key",
    ),
    ({"gather": {"num_digits": 4}, "on_digits": {"": {"action": "dnc"}}}, "on_digits", "invalid-digit-key"),
    (
        {"gather": {"num_digits": 4}, "on_digits": {"1\n": {"action": "dnc"}}},
        "on_digits",
        "invalid-digit-key",
    ),
    (
        {"gather": {"num_digits": 1}, "on_digits": {"12": {"action": "dnc"}}},
        "on_digits",
        "digit-key-never-matches",
    ),
    (
        {"gather": {"num_digits": 3}, "on_digits": {"1#": {"action": "dnc"}}},
        "on_digits",
        "digit-key-never-matches",
    ),
    (
        {"gather": {"num_digits": 1}, "on_digits": {"1": {"action": "rm -rf"}}},
        "on_digits.1.action",
        "invalid-field",
    ),
    (
        {"gather": {"num_digits": 1}, "on_digits": {"1": {"action": "dnc", "x": 1}}},
        "on_digits.1.x",
        "unknown-field",
    ),
    (
        {"gather": {"num_digits": 1}, "on_digits": {"1": {"tts": {"text": "hi\u0000"}}}},
        "on_digits.1.tts.text",
        "invalid-field",
    ),
    (
        {"gather": {"num_digits": 1}, "on_digits": {"1": {"tts": {"text": "ok", "voice": "en;rm"}}}},
        "on_digits.1.tts.voice",
        "invalid-field",
    ),
    ({"gather": {"num_digits": 1}, "on_digits": {}}, "on_digits", "invalid-field"),
    ({"machine_detection": "maybe"}, "machine_detection", "invalid-field"),
    ({"machine_detection": True}, "machine_detection", "invalid-field"),
    ({"amd": {"greeting_ms": 1500}}, "amd", "amd-without-machine-detection"),
    ({"machine_detection": "enable", "amd": {"greeting_ms": 99}}, "amd.greeting_ms", "invalid-field"),
    (
        {"machine_detection": "enable", "amd": {"total_analysis_ms": 60001}},
        "amd.total_analysis_ms",
        "invalid-field",
    ),
    ({"voicemail": {"tts": {"text": "Please call us back."}}}, "voicemail", "voicemail-without-message-end"),
    (
        {"machine_detection": "enable", "voicemail": {"tts": {"text": "Please call us back."}}},
        "voicemail",
        "voicemail-without-message-end",
    ),
    ({"dialplan": {"context": "default"}}, "dialplan.context", "dialplan-context-refused"),
    ({"dialplan": {"context": "sespcl-outbound"}}, "dialplan.context", "dialplan-context-refused"),
    ({"dialplan": {"context": "sespcl-custom-x;Hangup"}}, "dialplan.context", "dialplan-context-refused"),
    ({"dialplan": {"context": "sespcl-custom-${X}"}}, "dialplan.context", "dialplan-context-refused"),
    ({"dialplan": {"context": "sespcl-custom-Survey"}}, "dialplan.context", "dialplan-context-refused"),
    ({"dialplan": {"context": "sespcl-custom-" + "a" * 41}}, "dialplan.context", "dialplan-context-refused"),
    ({"dialplan": {"context": "sespcl-custom-survey\n"}}, "dialplan.context", "dialplan-context-refused"),
    (
        {"gather": {"num_digits": 1}, "dialplan": {"context": "sespcl-custom-survey"}},
        "dialplan",
        "dialplan-excludes-gather",
    ),
    ({"status_callback": {"url": "http://127.0.0.1/"}}, "status_callback.url", "callback-url-refused"),
    ({"status_callback": {"url": "http://[::1]:80/"}}, "status_callback.url", "callback-url-refused"),
    (
        {"status_callback": {"url": "http://169.254.169.254/latest/meta-data"}},
        "status_callback.url",
        "callback-url-refused",
    ),
    ({"status_callback": {"url": "http://0.0.0.0/"}}, "status_callback.url", "callback-url-refused"),
    ({"status_callback": {"url": "http://10.1.2.3/"}}, "status_callback.url", "callback-url-refused"),
    (
        {"status_callback": {"url": "http://[::ffff:127.0.0.1]/"}},
        "status_callback.url",
        "callback-url-refused",
    ),
    ({"status_callback": {"url": "http://224.0.0.1/"}}, "status_callback.url", "callback-url-refused"),
    ({"status_callback": {"url": "file:///etc/passwd"}}, "status_callback.url", "callback-url-refused"),
    (
        {"status_callback": {"url": "gopher://hooks.example.com:70/_GET"}},
        "status_callback.url",
        "callback-url-refused",
    ),
    (
        {"status_callback": {"url": "https://user:pw@hooks.example.com/"}},
        "status_callback.url",
        "callback-url-refused",
    ),
    (
        {"status_callback": {"url": "https://hooks.example.com/" + "a" * 1975}},
        "status_callback.url",
        "callback-url-refused",
    ),
    (
        {"status_callback": {"url": "https://hooks.example.com/\r\nX: y"}},
        "status_callback.url",
        "callback-url-refused",
    ),
    ({"status_callback": {"url": "https:///no-host"}}, "status_callback.url", "callback-url-refused"),
    ({"status_callback": {"url": 42}}, "status_callback.url", "invalid-field"),
    (
        {"status_callback": {"url": "https://hooks.example.com/", "events": []}},
        "status_callback.events",
        "invalid-field",
    ),
    (
        {"status_callback": {"url": "https://hooks.example.com/", "events": ["answered", "hangup"]}},
        "status_callback.events.1",
        "invalid-field",
    ),
    (
        {"status_callback": {"url": "https://hooks.example.com/", "secret": "x"}},
        "status_callback.secret",
        "unknown-field",
    ),
]


@pytest.mark.parametrize(("fields", "field", "code"), HOSTILE, ids=[h[2] + ":" + h[1] for h in HOSTILE])
def test_hostile_two_way_fields_are_refused_with_their_field_and_code(
    fields: dict[str, Any], field: str, code: str
) -> None:
    assert _refusal(**fields) == (field, code)


def test_a_private_callback_is_taken_when_the_operator_allows_it() -> None:
    allow = AllowList.parse("10.9.0.0/16, receiver.lab.internal")
    body: dict[str, Any] = {"status_callback": {"url": "http://10.9.1.5:8080/hooks"}}
    parsed = _call(allow, **body)
    assert parsed.callback() is not None
    assert _refusal(AllowList.parse("10.8.0.0/16"), **body) == ("status_callback.url", "callback-url-refused")
    assert _refusal(**body) == ("status_callback.url", "callback-url-refused")  # no context: nothing allowed


def test_a_campaigns_replies_are_said_as_written() -> None:
    defaults = {"tts": {"text": "Hello {{name}}, press 1 to confirm."}, "gather": {"num_digits": 1}}
    campaign = {"name": "Reminders", "defaults": defaults}
    CampaignIn.model_validate(
        campaign | {"defaults": defaults | {"on_digits": {"1": {"tts": {"text": "Thanks!"}}}}}
    )
    for refused in (
        {"on_digits": {"1": {"tts": {"text": "Thanks {{name}}!"}}}},
        {"machine_detection": "detect_message_end", "voicemail": {"tts": {"text": "Hi {{ name }}"}}},
    ):
        with pytest.raises(ValidationError) as error:
            CampaignIn.model_validate(campaign | {"defaults": defaults | refused})
        api_error = validation_error(error.value)
        assert api_error.code == "placeholders-not-supported"
        assert api_error.field in ("defaults.on_digits", "defaults.voicemail")


def test_the_offered_event_names_are_the_domains_and_the_row_fields_the_bodys() -> None:
    assert set(typing.get_args(EventName)) == {e.value for e in WebhookEvent}
    assert set(TWO_WAY_FIELDS) == ROW_TWO_WAY


def test_an_interaction_round_trips_through_storage_and_shows_as_asked() -> None:
    reply = Speech(text="Thank you, confirmed.", voice="en-gb", audio_hash="a" * 64)
    message = Speech(text="Please call Bayview Dental back.", voice="en-us", audio_hash="b" * 64)
    interaction = Interaction(
        gather=Gather(num_digits=2, timeout_s=7, finish_on_key="", retries=0),
        on_digits={
            "12": DigitReply(speech=reply),
            "9": DigitReply(dnc=True),
            "*": DigitReply(speech=message),
        },
        machine_detection=MachineDetection.DETECT_MESSAGE_END,
        amd=AmdTuning(initial_silence_ms=2500),
        voicemail=message,
    )
    stored = interaction.to_json()
    assert Interaction.from_json(stored) == interaction
    assert interaction.audio_hashes() == ["b" * 64, "a" * 64]  # each once, in a stable order
    assert [s.audio_hash for s in interaction.speeches()] == interaction.audio_hashes()
    shown = interaction_shape(interaction)
    assert shown["on_digits"]["9"] == {"tts": None, "action": "dnc"}
    assert shown["amd"] == {
        "initial_silence_ms": 2500,
        "greeting_ms": None,
        "after_greeting_silence_ms": None,
        "total_analysis_ms": None,
    }
    # What is shown is a body the API takes back, asking the same.
    again = _call(**shown).interaction_request()
    assert again.gather == interaction.gather and again.amd == interaction.amd
    assert again.on_digits["12"].speech == SpeechAsk(text=reply.text, voice="en-gb")
    assert Interaction.from_json(None) == Interaction() and Interaction().to_json() is None
    assert interaction_shape(Interaction()) == dict.fromkeys(
        ("gather", "on_digits", "machine_detection", "amd", "voicemail", "dialplan")
    )
