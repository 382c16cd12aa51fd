"""A two-way call's reports (digits, machine verdicts, hook results), as both drivers type them
and as the facts the dispatcher stores; the call's interaction as the node's channel variables."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.asterisk.ami_events import ami_event
from orchestrator.asterisk.ari_events import ari_event
from orchestrator.domain.events import ChannelEvent, DigitsPressed, HookReported, MachineVerdict
from orchestrator.domain.facts import fact_of
from orchestrator.domain.interaction import (
    AmdTuning,
    AnsweredBy,
    DigitReply,
    Gather,
    Interaction,
    MachineDetection,
    Speech,
)

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
ATTEMPT = uuid.UUID("0a1b2c3d-0000-4000-8000-000000000001")
CALL = uuid.UUID("0a1b2c3d-0000-4000-8000-0000000000ca")


def _ami(name: str, keys: Mapping[str, str]) -> ChannelEvent | None:
    fields = {"Event": "UserEvent", "UserEvent": name, "Uniqueid": str(ATTEMPT), "CallId": str(CALL)}
    return ami_event(fields | dict(keys), NOW)


def _ari(name: str, keys: Mapping[str, str]) -> ChannelEvent | None:
    channel = {"id": str(ATTEMPT), "name": "PJSIP/press1-00000001", "state": "Up"}
    event: dict[str, Any] = {
        "type": "ChannelUserevent",
        "timestamp": "2026-12-07T09:30:00.000+0000",
        "eventname": name,
        "userevent": {"eventname": name, "CallId": str(CALL), **keys},
        "channel": channel,
    }
    return ari_event(event, NOW)


DRIVERS: list[Callable[[str, Mapping[str, str]], ChannelEvent | None]] = [_ami, _ari]


@pytest.mark.parametrize("driver", DRIVERS, ids=["ami", "ari"])
def test_both_drivers_type_the_reports_alike(
    driver: Callable[[str, Mapping[str, str]], ChannelEvent | None],
) -> None:
    digits = driver("SespclDigits", {"Digits": "1"})
    assert isinstance(digits, DigitsPressed) and digits.digits == "1"
    assert digits.attempt_id == str(ATTEMPT)
    verdict = driver("SespclMachine", {"Status": "MACHINE", "Cause": "LONGGREETING-1500-1500", "End": "beep"})
    assert isinstance(verdict, MachineVerdict)
    assert (verdict.status, verdict.cause, verdict.end) == ("MACHINE", "LONGGREETING-1500-1500", "beep")
    hook = driver("SespclHook", {"Name": "rating", "Value": "4"})
    assert isinstance(hook, HookReported) and (hook.hook, hook.value) == ("rating", "4")


@pytest.mark.parametrize(
    ("status", "end", "expected"),
    [
        ("HUMAN", "", AnsweredBy.HUMAN),
        ("MACHINE", "", AnsweredBy.MACHINE_START),
        ("MACHINE", "beep", AnsweredBy.MACHINE_END_BEEP),
        ("MACHINE", "silence", AnsweredBy.MACHINE_END_SILENCE),
        ("MACHINE", "other", AnsweredBy.MACHINE_END_OTHER),
        ("NOTSURE", "", AnsweredBy.UNKNOWN),
        ("HANGUP", "", AnsweredBy.UNKNOWN),
    ],
)
def test_machine_verdicts_in_twilios_words(status: str, end: str, expected: AnsweredBy) -> None:
    event = _ami("SespclMachine", {"Status": status, "End": end})
    assert event is not None
    fact = fact_of(ATTEMPT, CALL, event)
    assert fact is not None and fact.answered_by is expected and fact.at == NOW


def test_digits_and_hooks_become_facts_of_the_call() -> None:
    pressed = _ari("SespclDigits", {"Digits": "12#"})
    assert pressed is not None
    fact = fact_of(ATTEMPT, CALL, pressed)
    assert fact is not None and (fact.call_id, fact.attempt_id, fact.digits) == (CALL, ATTEMPT, "12#")
    rated = _ami("SespclHook", {"Name": "rating", "Value": "5"})
    assert rated is not None
    hook = fact_of(ATTEMPT, CALL, rated)
    assert hook is not None and hook.hook == ("rating", "5") and hook.digits is None


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("SespclDigits", {"Digits": ""}),
        ("SespclDigits", {"Digits": "1" * 33}),
        ("SespclDigits", {"Digits": "1;DROP"}),
        ("SespclHook", {"Name": "Rating", "Value": "4"}),
        ("SespclHook", {"Name": "rating", "Value": "four stars"}),
        ("SespclHook", {"Name": "", "Value": "4"}),
        ("SespclHook", {"Name": "rating", "Value": "4\n"}),
        ("SespclDigits", {"Digits": "1\n"}),
        ("SespclAnswered", {}),
        ("SespclPlaybackDone", {"Status": "SUCCESS"}),
    ],
)
def test_reports_the_dialplan_would_not_send_are_not_facts(name: str, keys: dict[str, str]) -> None:
    event = _ami(name, keys)
    assert event is not None and event.recorded is not None, "still recorded in the call's events"
    assert fact_of(ATTEMPT, CALL, event) is None


def _speech(text: str) -> Speech:
    return Speech(text=text, voice="en-us", audio_hash=f"{abs(hash(text)):064d}"[-64:])


def test_an_appointment_reminders_channel_variables() -> None:
    confirmed, stop = _speech("Thank you, Maria, see you Tuesday."), _speech("You will not be called again.")
    interaction = Interaction(
        gather=Gather(num_digits=1, timeout_s=7, finish_on_key="", retries=2),
        on_digits={
            "1": DigitReply(speech=confirmed),
            "9": DigitReply(speech=stop, dnc=True),
            "*0": DigitReply(),
        },
    )
    paths = {confirmed.audio_hash: "/var/lib/sespcl/audio/a", stop.audio_hash: "/var/lib/sespcl/audio/b"}
    assert interaction.channel_variables(paths.__getitem__) == {
        "SESPCL_GATHER_DIGITS": "1",
        "SESPCL_GATHER_TIMEOUT": "7",
        "SESPCL_GATHER_FINISH": "",
        "SESPCL_GATHER_RETRIES": "2",
        "SESPCL_ON_1": "/var/lib/sespcl/audio/a",
        "SESPCL_ON_9": "/var/lib/sespcl/audio/b",
    }
    assert interaction.audio_hashes() == [confirmed.audio_hash, stop.audio_hash]
    assert Interaction.from_json(interaction.to_json()) == interaction


def test_machine_detection_and_a_custom_context_as_channel_variables() -> None:
    notice = _speech("This is Northside Power: service in your street is restored.")
    outage = Interaction(
        machine_detection=MachineDetection.DETECT_MESSAGE_END,
        amd=AmdTuning(greeting_ms=2000, total_analysis_ms=6000),
        voicemail=notice,
    )
    variables = outage.channel_variables({notice.audio_hash: "/a/n"}.__getitem__)
    assert variables == {"SESPCL_AMD": "end", "SESPCL_AMD_ARGS": ":2000::6000", "SESPCL_VOICEMAIL": "/a/n"}
    assert "," not in variables["SESPCL_AMD_ARGS"], "AMI splits a Variable header at commas"
    survey = Interaction(dialplan_context="sespcl-custom-survey", machine_detection=MachineDetection.ENABLE)
    assert survey.channel_variables(lambda h: h) == {
        "SESPCL_AMD": "start",
        "SESPCL_AMD_ARGS": ":::",
        "SESPCL_CONTEXT": "sespcl-custom-survey",
    }
    assert Interaction().to_json() is None and Interaction.from_json(None).is_plain


def test_star_and_pound_keys_become_variable_names_the_dialplan_can_build() -> None:
    reply = _speech("Connecting you to an agent.")
    interaction = Interaction(gather=Gather(num_digits=3), on_digits={"*9#": DigitReply(speech=reply)})
    assert interaction.channel_variables(lambda h: "/p")["SESPCL_ON_S9H"] == "/p"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Gather(num_digits=0),
        lambda: Gather(num_digits=33),
        lambda: Gather(num_digits=1, timeout_s=61),
        lambda: Gather(num_digits=1, finish_on_key="##"),
        lambda: Gather(num_digits=1, retries=4),
        lambda: AmdTuning(greeting_ms=50),
        lambda: Interaction(on_digits={"1a": DigitReply()}),
        lambda: Interaction(dialplan_context="default"),
        lambda: Interaction(dialplan_context="sespcl-custom-x;Hangup"),
        lambda: Interaction(dialplan_context="sespcl-custom-${X}"),
    ],
)
def test_what_the_domain_refuses(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()
