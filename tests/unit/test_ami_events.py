"""AMI events as typed events: which kind each becomes, the attempt it names, what is recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.asterisk.ami_events import ami_event
from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelCreated,
    ChannelEvent,
    ChannelHungUp,
    ChannelProgress,
    ChannelRinging,
    ChannelState,
    DialplanAnswered,
    DialplanReport,
    DialUpdate,
    MaxCallLengthReached,
    PlaybackDone,
    PromptRejected,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ID = "0a1b2c3d-0000-4000-8000-000000000001"


def _event(name: str, **fields: str) -> ChannelEvent:
    typed = ami_event({"Event": name, "Uniqueid": ID, **fields}, NOW)
    assert typed is not None and typed.attempt_id == ID and typed.at == NOW
    return typed


def _dial(name: str, status: str = "") -> ChannelEvent:
    """As Asterisk sends them for an originated channel: no Uniqueid, the channel as DestUniqueid."""
    fields = {"Event": name, "DestUniqueid": ID, "DestChannelStateDesc": "Up"}
    typed = ami_event(fields | ({"DialStatus": status} if status else {}), NOW)
    assert typed is not None and typed.attempt_id == ID
    return typed


def test_channel_events() -> None:
    created = _event("Newchannel", Channel="PJSIP/demo-00000001", ChannelStateDesc="Down")
    assert isinstance(created, ChannelCreated) and created.channel == "PJSIP/demo-00000001"
    assert created.state == "Down"
    state = _event("Newstate", ChannelStateDesc="Ringing")
    assert isinstance(state, ChannelState) and state.state == "Ringing"
    hangup = _event("Hangup", Cause="17", **{"Cause-txt": "User busy"}, ChannelStateDesc="Down")
    assert isinstance(hangup, ChannelHungUp) and (hangup.cause, hangup.cause_text) == (17, "User busy")
    for odd in ("", "x"):
        odd_hangup = _event("Hangup", Cause=odd)
        assert isinstance(odd_hangup, ChannelHungUp) and odd_hangup.cause == 0


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [
        ("DialBegin", "", DialUpdate),
        ("DialState", "RINGING", ChannelRinging),
        ("DialState", "PROGRESS", ChannelProgress),
        ("DialState", "proceeding", ChannelProgress),
        ("DialState", "ANSWER", DialUpdate),  # not how Asterisk reports an answer: moves nothing
        ("DialEnd", "ANSWER", ChannelAnswered),
        ("DialEnd", "BUSY", DialUpdate),
        ("DialEnd", "RINGING", DialUpdate),
    ],
)
def test_dial_events_name_the_dialed_channel(name: str, status: str, kind: type[ChannelEvent]) -> None:
    typed = _dial(name, status)
    assert type(typed) is kind
    assert typed.state == "", "only an event's own ChannelStateDesc is its channel's state"


@pytest.mark.parametrize(
    ("user_event", "keys", "kind"),
    [
        ("SespclAnswered", {}, DialplanAnswered),
        ("SespclPlaybackDone", {"Status": "SUCCESS"}, PlaybackDone),
        ("SespclRejected", {"Reason": "missing-audio"}, PromptRejected),
        ("SespclMaxCallLength", {}, MaxCallLengthReached),
        ("SomethingNew", {}, DialplanReport),
    ],
)
def test_the_dialplans_reports(user_event: str, keys: dict[str, str], kind: type[ChannelEvent]) -> None:
    typed = _event("UserEvent", UserEvent=user_event, ChannelStateDesc="Up", **keys)
    assert type(typed) is kind and isinstance(typed, DialplanReport) and typed.name == user_event
    assert typed.state == "Up"
    if isinstance(typed, PlaybackDone):
        assert typed.status == "SUCCESS"
    if isinstance(typed, PromptRejected):
        assert typed.reason == "missing-audio"


def test_recorded_as_received() -> None:
    fields = {"Event": "Hangup", "Uniqueid": ID, "Cause": "16", "Linkedid": ID}
    typed = ami_event(fields, NOW)
    assert typed is not None and typed.recorded is not None
    assert typed.recorded.name == "Hangup" and typed.recorded.fields == fields


@pytest.mark.parametrize(
    "fields",
    [
        {"Event": "FullyBooted", "Status": "Fully Booted"},
        {"Event": "OriginateResponse", "Uniqueid": ID, "Response": "Failure", "Reason": "0"},
        {"Event": "Newstate", "ChannelStateDesc": "Up"},  # no channel named
        {"Event": "VarSet", "Uniqueid": ID},
        {"Uniqueid": ID},
    ],
)
def test_events_that_say_nothing_of_a_channel_are_dropped(fields: dict[str, str]) -> None:
    assert ami_event(fields, NOW) is None
