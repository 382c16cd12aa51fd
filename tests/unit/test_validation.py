import json
from typing import get_args

import pytest
from pydantic import ValidationError

from orchestrator.api.schemas import CallIn, CampaignIn, RetryOutcome
from orchestrator.domain.audio import SpeechRequest, audio_file_name
from orchestrator.domain.calling_hours import CallingWindow
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.phone import parse_e164
from orchestrator.domain.retry import RETRYABLE
from orchestrator.domain.text import control_character_position


@pytest.mark.parametrize("number", ["+14155550123", "+442071838750", "+4915112345678"])
def test_valid_e164(number: str) -> None:
    assert parse_e164(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "14155550123",
        "+1415555012x",
        "+1 415 555 0123",
        "+0123456",
        "+",
        "",
        "+1415555\n0123",
        "+19999999999",
        "+1234567890123456",
        "+14155550123\r\nAction: Hangup",
    ],
)
def test_invalid_e164_rejected(number: str) -> None:
    with pytest.raises(ValueError):
        parse_e164(number)


def _body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"to": "+14155550123", "tts": {"text": "hello"}}
    body.update(overrides)
    return body


def test_minimal_call_gets_defaults() -> None:
    call = CallIn.model_validate(_body())
    assert call.ring_timeout_s == 30 and call.trunk is None and call.from_ is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to": "12345"}, "to"),
        ({"from": "+1"}, "from"),
        ({"ring_timeout_s": 4}, "ring_timeout_s"),
        ({"ring_timeout_s": 121}, "ring_timeout_s"),
        ({"ring_timeout_s": "30"}, "ring_timeout_s"),
        ({"tts": {"text": ""}}, "tts.text"),
        ({"tts": {"text": "x" * 2001}}, "tts.text"),
        ({"tts": {"text": "hello\nAction: Originate"}}, "tts.text"),
        ({"tts": {"text": "hi", "voice": "en\r\n"}}, "tts.voice"),
        ({"tts": {"text": "hi", "speed": 2}}, "tts.speed"),
        ({"trunk": "Demo;evil"}, "trunk"),
        ({"surprise": 1}, "surprise"),
        ({"metadata": {"blob": "x" * 5000}}, "metadata"),
        ({"to": 14155550123}, "to"),
        ({"metadata": {"note": "nul\u0000byte"}}, "metadata"),
        ({"metadata": {"score": float("nan")}}, "metadata"),
        ({"tz": "Europe"}, "tz"),  # a folder of zones, not a zone
    ],
)
def test_bad_input_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CallIn.model_validate(_body(**overrides))
    locs = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert field in locs


def test_control_characters_found() -> None:
    assert control_character_position("fine text, with punctuation!") is None
    assert control_character_position("tab\there") == 3
    assert control_character_position("bidi\u202eoverride") == 4


def test_speech_key_is_content_addressed() -> None:
    a = SpeechRequest(text="Hello", voice="en-us")
    assert a.key() == SpeechRequest(text="Hello", voice="en-us").key()
    assert a.key() != SpeechRequest(text="Hello", voice="en-gb").key()
    assert a.key() != SpeechRequest(text="Hello ", voice="en-us").key()
    assert a.key() != SpeechRequest(text="Hello", voice="en-us", options={"rate": 120}).key()
    assert len(a.key()) == 64 and audio_file_name(a.key()).endswith(".ulaw")


def test_idempotency_hash_follows_content() -> None:
    one = CallIn.model_validate(_body(metadata={"a": 1}))
    same = CallIn.model_validate(json.loads(json.dumps(_body(metadata={"a": 1}))))
    other = CallIn.model_validate(_body(metadata={"a": 2}))
    assert one.canonical_hash() == same.canonical_hash() != other.canonical_hash()


def test_the_retry_outcomes_offered_are_the_retryable_statuses() -> None:
    assert set(get_args(RetryOutcome)) == {s.value for s in RETRYABLE}


def test_a_call_body_becomes_the_domain_request() -> None:
    body = _body(
        **{"from": "+14155550100"},
        trunk="demo",
        tts={"text": "hello", "voice": "en-us"},
        ring_timeout_s=20,
        metadata={"a": 1},
        calling_window={"start": "09:00", "end": "18:00"},
        tz="America/New_York",
        max_attempts=3,
        retry_on=["busy"],
        retry_backoff_s=30,
    )
    parsed = CallIn.model_validate(body)
    policy = DestinationPolicy(frozenset({"US"}), premium=False)
    request = parsed.to_request(idempotency_key="k1", created_by="ops", destinations=policy)
    assert (request.to, request.from_, request.trunk) == ("+14155550123", "+14155550100", "demo")
    assert (request.text, request.voice, request.ring_timeout_s) == ("hello", "en-us", 20)
    assert request.metadata == {"a": 1} and request.tz == "America/New_York"
    assert request.window == CallingWindow.parse("09:00", "18:00")
    assert request.retry == parsed.retry_policy() and request.retry.max_attempts == 3
    assert (request.created_by, request.destinations) == ("ops", policy)
    assert (request.idempotency_key, request.request_hash) == ("k1", parsed.canonical_hash())
    # Without a key there is nothing to compare a replay with.
    assert parsed.to_request(idempotency_key=None, created_by="ops", destinations=policy).request_hash is None


def test_a_campaign_body_becomes_the_domain_request() -> None:
    parsed = CampaignIn.model_validate(
        {
            "name": "outage",
            "cps": 5,
            "defaults": {
                "trunk": "demo",
                "from": "+14155550100",
                "tts": {"text": "Hello {{name}}", "voice": "en-us"},
                "ring_timeout_s": 25,
                "calling_window": {"start": "09:00", "end": "18:00"},
                "max_attempts": 2,
                "retry_on": ["no-answer"],
            },
        }
    )
    request = parsed.to_request(created_by="ops")
    assert (request.name, request.cps, request.created_by) == ("outage", 5.0, "ops")
    assert (request.trunk, request.from_, request.ring_timeout_s) == ("demo", "+14155550100", 25)
    assert (request.text, request.voice) == ("Hello {{name}}", "en-us")
    assert request.window == CallingWindow.parse("09:00", "18:00") and request.expires_at is None
    assert request.retry == parsed.defaults.retry_policy() and request.retry.max_attempts == 2


@pytest.mark.parametrize(
    "text",
    [
        '{"a": NaN}',
        '{"a": -Infinity}',
        '{"a": ' + "9" * 5000 + "}",
        b'{"a": "\xff"}',
        "{oops",
        "[" * 100_000 + "]" * 100_000,
        b'{"a": ' + b"[" * 32 + b"]" * 32 + b"}",
        '{"a": ' + '{"b": ' * 40 + "1" + "}" * 41,
    ],
)
def test_bodies_that_are_not_standard_json_are_value_errors(text: str | bytes) -> None:
    """Each becomes a 400 with the reason, never a server error (jsonb refuses NaN later)."""
    from orchestrator.api import json_text

    with pytest.raises(ValueError) as info:
        json_text.loads(text)
    assert json_text.reason(info.value)


def test_hosts_with_an_ipv6_scope_id_are_refused() -> None:
    """The scope id may hold any character: `];maddr=` would rewrite the trunk's SIP URI."""
    from orchestrator.domain.trunk import check_host

    for bad in ("fe80::1%x];maddr=evil.example;x=[", "fe80::1%a\nb", "fe80::1%eth0"):
        with pytest.raises(ValueError):
            check_host(bad)
    assert check_host("FE80::1") == "fe80::1" and check_host("Sip.Example.com") == "sip.example.com"


def test_a_dotted_quad_that_is_no_address_is_not_taken_for_a_name() -> None:
    from orchestrator.domain.trunk import check_host

    for bad in ("999.999.999.999", "1.2.3.4.5", "10.0.0.256", "example.123"):
        with pytest.raises(ValueError):
            check_host(bad)
    assert check_host("sip1.carrier-2.example") == "sip1.carrier-2.example"
    assert check_host("10.0.0.25") == "10.0.0.25"


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    from pydantic import ValidationError

    from orchestrator.config import Settings, settings_error

    with pytest.raises(ValidationError) as info:
        Settings(max_uploads=0, max_call_s=0)
    text = settings_error(info.value)
    assert "\n" not in text
    assert "SESPCL_MAX_UPLOADS" in text and "SESPCL_MAX_CALL_S" in text


@pytest.mark.parametrize(
    "text", ["sip:192.0.2.7:5061;transport=tls", "p4ss;w^rd;;^3B", "plain", "^", ";", "caf\u00e9;\u00fc"]
)
def test_realtime_values_survive_asterisks_split_at_semicolons(text: str) -> None:
    from orchestrator.persistence.trunks import from_realtime_text, realtime_text

    stored = realtime_text(text)
    assert ";" not in stored
    # what res_config_pgsql does: split at ';', then decode ^XX in each part
    assert [from_realtime_text(part) for part in stored.split(";")] == [text]


def test_json_nested_up_to_the_bound_is_read() -> None:
    import json

    from orchestrator.api import json_text

    value: object = "deepest"
    for _ in range(json_text.MAX_DEPTH - 1):
        value = [value]
    text = json.dumps({"a": value})
    assert text.count("[") + 1 == json_text.MAX_DEPTH
    assert json_text.loads(text) == {"a": value}
    with pytest.raises(ValueError, match="nested deeper"):
        json_text.loads(json.dumps({"a": [value]}))
