"""ARI driver, pure parts: typed events and what is recorded of them, cause → reason, value
checks. No network.

The events are copies of what Asterisk 22.10.1 sent (subscribeAll, channels originated into the
sespcl-outbound dialplan, SIPp answering / busy / ringing), trimmed of fields nobody reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.ari_events import (
    EVENT_TYPES,
    ari_event,
    dial_event_name,
    outcome_for,
    reason_for_cause,
)
from orchestrator.asterisk.ari_rest import (
    AriError,
    UnsafeAriValue,
    ari_value,
    base_url,
    basic_auth,
    event_filter,
    originate_params,
    path_segment,
    rest_url,
)
from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import OriginateOutcome, OriginateRequest
from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelCreated,
    ChannelEvent,
    ChannelHungUp,
    ChannelProgress,
    ChannelRinging,
    ChannelState,
    DialplanAnswered,
    DialUpdate,
    PlaybackDone,
    Recorded,
)
from orchestrator.domain.ports import DialNode
from tests.unit.factories import originate_request

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ID = "0fcc6185-449e-4e18-a170-b8a95f5509d6"


def _channel(state: str, name: str = "PJSIP/ariok-00000000", priority: int = 1) -> dict[str, Any]:
    return {
        "id": ID,
        "name": name,
        "state": state,
        "protocol_id": "780355c8-c6b3-4a5d-8f47-9c9cf9310546",
        "caller": {"name": "", "number": "+15550000000"},
        "connected": {"name": "", "number": "+15550000000"},
        "accountcode": "",
        "dialplan": {
            "context": "sespcl-inbound",
            "exten": "s",
            "priority": priority,
            "app_name": "AppDial2",
            "app_data": "(Outgoing Line)",
        },
        "creationtime": "2026-11-28T00:48:21.573+0000",
        "language": "en",
    }


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": "2026-11-28T00:48:21.575+0000",
        "asterisk_id": "02:fc:00:00:00:01",
        "application": "sespcl",
        **fields,
    }


def _dial(status: str, state: str) -> dict[str, Any]:
    return _event("Dial", dialstatus=status, forward="", dialstring="15551230001@ariok", peer=_channel(state))


def _userevent(name: str, **keys: str) -> dict[str, Any]:
    return _event(
        "ChannelUserevent", eventname=name, userevent={"eventname": name, **keys}, channel=_channel("Up")
    )


def _destroyed(cause: int, text: str, state: str, tech_cause: int | None = None) -> dict[str, Any]:
    extra = {} if tech_cause is None else {"tech_cause": tech_cause}
    return _event("ChannelDestroyed", cause=cause, cause_txt=text, channel=_channel(state), **extra)


ANSWERED = [
    _event("ChannelCreated", channel=_channel("Down")),
    _dial("", "Down"),
    _event("ChannelStateChange", channel=_channel("Up")),
    _dial("ANSWER", "Up"),
    _userevent("SespclAnswered", CallId=ID),
    _userevent("SespclPlaybackDone", CallId=ID, Status="SUCCESS"),
    _event("ChannelHangupRequest", cause=16, soft=True, channel=_channel("Up")),
    _destroyed(16, "Normal Clearing", "Up"),
]
BUSY = [
    _event("ChannelCreated", channel=_channel("Down")),
    _dial("", "Down"),
    _event("ChannelHangupRequest", cause=17, tech_cause=486, channel=_channel("Down")),
    _dial("BUSY", "Down"),
    _destroyed(17, "User busy", "Down", tech_cause=486),
]
# 180 Ringing, then the originate's ring timeout: no final Dial event, cause 19.
NO_ANSWER = [
    _event("ChannelCreated", channel=_channel("Down")),
    _dial("", "Down"),
    _dial("RINGING", "Down"),
    _event("ChannelStateChange", channel=_channel("Ringing")),
    _destroyed(19, "User alerting, no answer", "Ringing", tech_cause=480),
]


def _typed(event: dict[str, Any]) -> ChannelEvent:
    typed = ari_event(event, NOW)
    assert typed is not None
    return typed


def _recorded(event: dict[str, Any]) -> Recorded:
    recorded = _typed(event).recorded
    assert recorded is not None
    return recorded


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [t.recorded.name for e in events if (t := ari_event(e, NOW)) is not None and t.recorded]


def _kinds(events: list[dict[str, Any]]) -> list[type[ChannelEvent]]:
    return [type(t) for e in events if (t := ari_event(e, NOW)) is not None]


def test_an_answered_call_is_recorded_under_the_names_it_always_had() -> None:
    assert _names(ANSWERED) == [
        "Newchannel",
        "DialBegin",
        "Newstate",
        "DialEnd",
        "UserEvent",
        "UserEvent",
        "Hangup",
    ]
    assert _kinds(ANSWERED) == [
        ChannelCreated,
        DialUpdate,
        ChannelState,
        ChannelAnswered,
        DialplanAnswered,
        PlaybackDone,
        ChannelHungUp,
    ]


def test_busy_and_no_answer_sequences() -> None:
    assert _names(BUSY) == ["Newchannel", "DialBegin", "DialEnd", "Hangup"]
    assert _kinds(BUSY) == [ChannelCreated, DialUpdate, DialUpdate, ChannelHungUp]
    assert _names(NO_ANSWER) == ["Newchannel", "DialBegin", "DialState", "Newstate", "Hangup"]
    assert _kinds(NO_ANSWER) == [ChannelCreated, DialUpdate, ChannelRinging, ChannelState, ChannelHungUp]


def test_every_event_names_the_channel_by_id() -> None:
    for event in ANSWERED + BUSY + NO_ANSWER:
        typed = ari_event(event, NOW)
        if typed is not None:
            assert typed.attempt_id == ID and typed.at == NOW
            assert typed.recorded is not None and typed.recorded.fields["Channel"] == ID
            assert typed.recorded.fields["ChannelName"].startswith("PJSIP/ariok-")


def test_created_and_state_change() -> None:
    created = _typed(ANSWERED[0])
    assert isinstance(created, ChannelCreated) and created.channel == ID and created.state == "Down"
    assert _recorded(ANSWERED[0]).fields["ChannelState"] == "0"
    changed = _typed(NO_ANSWER[3])
    assert isinstance(changed, ChannelState) and changed.state == "Ringing"
    recorded = _recorded(NO_ANSWER[3])
    assert (recorded.name, recorded.fields["ChannelStateDesc"], recorded.fields["ChannelState"]) == (
        "Newstate",
        "Ringing",
        "5",
    )


def test_dial_uses_the_peer_and_keeps_the_status() -> None:
    ringing = _dial("RINGING", "Down")
    assert isinstance(_typed(ringing), ChannelRinging) and _typed(ringing).attempt_id == ID
    assert (_recorded(ringing).name, _recorded(ringing).fields["DialStatus"]) == ("DialState", "RINGING")
    busy = _typed(_dial("BUSY", "Down"))
    assert isinstance(busy, DialUpdate) and busy.status == "BUSY"
    assert _recorded(_dial("BUSY", "Down")).name == "DialEnd"
    assert isinstance(_typed(_dial("progress", "Down")), ChannelProgress)


@pytest.mark.parametrize(
    ("status", "name"),
    [
        ("", "DialBegin"),
        ("RINGING", "DialState"),
        ("PROGRESS", "DialState"),
        ("PROCEEDING", "DialState"),
        ("ANSWER", "DialEnd"),
        ("BUSY", "DialEnd"),
        ("NOANSWER", "DialEnd"),
        ("CONGESTION", "DialEnd"),
        ("CHANUNAVAIL", "DialEnd"),
        ("CANCEL", "DialEnd"),
    ],
)
def test_dial_event_name(status: str, name: str) -> None:
    assert dial_event_name(status) == name


def test_destroyed_is_a_hangup_with_its_cause() -> None:
    busy = _typed(BUSY[-1])
    assert isinstance(busy, ChannelHungUp) and (busy.cause, busy.cause_text) == (17, "User busy")
    fields = _recorded(BUSY[-1]).fields
    assert _recorded(BUSY[-1]).name == "Hangup"
    assert fields["Cause"] == "17" and fields["Cause-txt"] == "User busy" and fields["TechCause"] == "486"
    assert fields["ChannelStateDesc"] == "Down"
    fields = _recorded(ANSWERED[-1]).fields
    assert fields["Cause"] == "16" and fields["ChannelStateDesc"] == "Up" and "TechCause" not in fields
    odd = _typed(_destroyed(16, "x", "Up") | {"cause": "sixteen"})
    assert isinstance(odd, ChannelHungUp) and odd.cause == 0


def test_userevent_keys_are_kept_but_cannot_replace_channel_fields() -> None:
    done = _typed(ANSWERED[5])
    assert isinstance(done, PlaybackDone) and done.status == "SUCCESS" and done.name == "SespclPlaybackDone"
    fields = _recorded(ANSWERED[5]).fields
    assert fields["UserEvent"] == "SespclPlaybackDone" and fields["Status"] == "SUCCESS"
    assert fields["CallId"] == ID and "eventname" not in fields
    spoof = _userevent("SespclAnswered", Uniqueid="someone-else", Channel="x", UserEvent="Other")
    assert _typed(spoof).attempt_id == ID
    fields = _recorded(spoof).fields
    assert fields["Channel"] == ID and fields["UserEvent"] == "SespclAnswered"


@pytest.mark.parametrize(
    "event",
    [
        _event("ChannelVarset", variable="X", value="1", channel=_channel("Up")),
        _event("ChannelDialplan", channel=_channel("Up")),
        _event("ChannelHangupRequest", cause=16, channel=_channel("Up")),
        _event("DeviceStateChanged", device_state={"name": "PJSIP/ariok", "state": "INUSE"}),
        _event("ApplicationReplaced"),
        _event("ChannelUserevent", eventname="X", userevent={}),  # raised without a channel
        _event("ChannelCreated", channel="not an object"),
        _event("Dial", dialstatus="ANSWER"),  # no peer
        {"no": "type"},
    ],
)
def test_other_or_malformed_events_are_dropped(event: dict[str, Any]) -> None:
    assert ari_event(event, NOW) is None


@pytest.mark.parametrize(
    ("events", "status", "cause"),
    [
        (ANSWERED, CallStatus.COMPLETED, 16),
        (BUSY, CallStatus.BUSY, 17),
        (NO_ANSWER, CallStatus.NO_ANSWER, 19),
    ],
)
def test_domain_reaches_the_same_status_as_with_ami(
    events: list[dict[str, Any]], status: CallStatus, cause: int
) -> None:
    state = AttemptState(uuid4(), uuid4(), "n1")
    final = None
    for event in events:
        typed = ari_event(event, NOW)
        if typed is not None:
            final = state.on_event(typed) or final
    assert final is not None and final.status is status
    assert final.ending is not None and final.ending.cause == cause
    assert state.channel == ID  # what the dispatcher later passes to hangup()


@pytest.mark.parametrize(
    ("cause", "reason"),
    [(16, 0), (17, 5), (18, 3), (19, 3), (34, 8), (38, 8), (41, 8), (42, 8), (21, 0), (0, 0), (127, 0)],
)
def test_reason_for_cause(cause: int, reason: int) -> None:
    assert reason_for_cause(cause) == reason


def test_originate_outcome_from_events() -> None:
    def hangup(state: str, cause: int) -> ChannelHungUp:
        return ChannelHungUp(attempt_id=ID, at=NOW, state=state, cause=cause)

    assert outcome_for(ChannelCreated(attempt_id=ID, at=NOW, state="Down", channel=ID)) is None
    assert outcome_for(ChannelState(attempt_id=ID, at=NOW, state="Ringing")) is None
    assert outcome_for(ChannelState(attempt_id=ID, at=NOW, state="Up")) == OriginateOutcome(True, 4)
    assert outcome_for(hangup("Up", 16)) == OriginateOutcome(True, 4)
    assert outcome_for(hangup("Down", 17)) == OriginateOutcome(False, 5)
    assert outcome_for(hangup("Ringing", 19)) == OriginateOutcome(False, 3)
    assert outcome_for(hangup("Down", 0)) == OriginateOutcome(False, 0)


def _request(**overrides: Any) -> OriginateRequest:
    return originate_request(**{"attempt_id": ID, **overrides})


def test_originate_params() -> None:
    query, body = originate_params(_request())
    assert query == {
        "endpoint": "PJSIP/+14155550123@demo",
        "context": "sespcl-outbound",
        "extension": "s",
        "priority": "1",
        "timeout": "30",
        "callerId": "+14155550100",
    }
    assert body == {
        "variables": {
            "SESPCL_AUDIO": "/var/lib/sespcl/audio/abc",
            "SESPCL_CALL_ID": "c1",
            "SESPCL_MAX_CALL_S": "600",
        }
    }


def test_originate_timeout_rounds_up_and_caller_id_is_optional() -> None:
    query, _ = originate_params(_request(timeout_ms=1500, caller_id=None))
    assert query["timeout"] == "2" and "callerId" not in query
    query, _ = originate_params(_request(timeout_ms=0))
    assert query["timeout"] == "1"  # 0 or -1 would mean "no timeout" to ARI


@pytest.mark.parametrize("field", ["to", "trunk", "caller_id", "audio_path", "call_id"])
@pytest.mark.parametrize("bad", ["\n", "\r\n", "\r", "\x00"])
def test_no_line_break_or_nul_reaches_ari(field: str, bad: str) -> None:
    with pytest.raises(UnsafeAriValue):
        originate_params(_request(**{field: f"x{bad}y"}))


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "", ".", ".."])
def test_path_segment_refuses(bad: str) -> None:
    with pytest.raises(UnsafeAriValue):
        path_segment(bad)


def test_path_segments_are_percent_encoded() -> None:
    assert path_segment("a/b?c#d%e f") == "a%2Fb%3Fc%23d%25e%20f"
    url = rest_url("http://127.0.10.1:8088/ari", "channels", "../asterisk/info")
    assert url.raw_path == "/ari/channels/..%2Fasterisk%2Finfo"
    assert str(rest_url("http://h:8088/ari", "channels", ID)) == f"http://h:8088/ari/channels/{ID}"


def test_base_url() -> None:
    assert base_url("http://127.0.10.1:8088/ari/") == "http://127.0.10.1:8088/ari"
    for bad in ("ftp://h/ari", "http:///ari", "http://h/ari?x=1", "http://h/ari\r\nX: y"):
        with pytest.raises(AriError):
            base_url(bad)


def test_values_and_auth() -> None:
    assert ari_value("PJSIP/+1@demo") == "PJSIP/+1@demo"
    assert basic_auth("sespcl", "secret") == "Basic c2VzcGNsOnNlY3JldA=="
    with pytest.raises(UnsafeAriValue):
        basic_auth("sespcl", "se\ncret")


def test_event_filter_allows_what_is_translated_and_the_takeover_notice() -> None:
    allowed = [item["type"] for item in event_filter()["allowed"]]
    assert set(EVENT_TYPES) <= set(allowed) and "ApplicationReplaced" in allowed


def test_node_is_a_dial_node_and_checks_its_settings_without_io() -> None:
    node: DialNode = AriNode(
        "n1", url="http://127.0.10.1:8088/ari/", username="sespcl", password="pw", on_event=lambda *a: None
    )
    assert node.driver == "ari" and not node.up and node.version is None
    with pytest.raises(UnsafeAriValue):
        AriNode(
            "n1", url="http://h/ari", username="sespcl", password="pw", on_event=lambda *a: None, app="a\nb"
        )
