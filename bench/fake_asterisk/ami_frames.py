"""What AMI says of a simulated channel's step: the frames, their headers in Asterisk 22's order
and words (tests/fixtures/ami/*.txt, the dispatcher's user). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from bench.fake_asterisk.calls import Dialed, Kind, Step
from bench.fake_asterisk.node import Channel

UNKNOWN = "<unknown>"
Pairs = Iterable[tuple[str, object]]


def frame(pairs: Pairs) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in pairs) + "\r\n").encode()


def response(action_id: str, *pairs: tuple[str, object], result: str = "Success") -> bytes:
    """An action's reply: Response first, then its ActionID (when the action gave one)."""
    head: list[tuple[str, object]] = [("Response", result)]
    if action_id:
        head.append(("ActionID", action_id))
    return frame([*head, *pairs])


def _channel(channel: Channel, prefix: str = "", *, caller_set: bool = True) -> list[tuple[str, object]]:
    caller = channel.dialed.caller if caller_set else UNKNOWN
    where = channel.where
    return [
        (f"{prefix}Channel", channel.name),
        (f"{prefix}ChannelState", channel.state),
        (f"{prefix}ChannelStateDesc", channel.state_name),
        (f"{prefix}CallerIDNum", caller),
        (f"{prefix}CallerIDName", UNKNOWN),
        (f"{prefix}ConnectedLineNum", caller),
        (f"{prefix}ConnectedLineName", UNKNOWN),
        (f"{prefix}Language", "en"),
        (f"{prefix}AccountCode", ""),
        (f"{prefix}Context", where.context),
        (f"{prefix}Exten", where.exten),
        (f"{prefix}Priority", where.priority),
        (f"{prefix}Uniqueid", channel.uniqueid),
        (f"{prefix}Linkedid", channel.uniqueid),
    ]


def _event(name: str, system: str, pairs: Pairs, privilege: str = "call,all") -> bytes:
    return frame([("Event", name), ("Privilege", privilege), ("SystemName", system), *pairs])


def _originate_response(dialed: Dialed, system: str, channel: str, reason: int, ok: bool) -> bytes:
    return _event(
        "OriginateResponse",
        system,
        [
            ("ActionID", dialed.action_id),
            ("Response", "Success" if ok else "Failure"),
            ("Channel", channel),
            ("Context", dialed.context),
            ("Exten", "s"),
            ("Reason", reason),
            ("Uniqueid", dialed.uniqueid),
            ("CallerIDNum", dialed.caller),
            ("CallerIDName", UNKNOWN),
        ],
    )


def _dial(name: str, channel: Channel, system: str, last: tuple[str, str]) -> bytes:
    return _event(name, system, [*_channel(channel, "Dest"), last])


def _hangup(channel: Channel, step: Step, system: str) -> bytes:
    assert step.ending is not None
    ending = step.ending
    tech = [("TechCause", ending.tech_cause)] if ending.tech_cause is not None else []
    cause = [("Cause", ending.cause), ("Cause-txt", ending.text), *tech]
    return _event("Hangup", system, [*_channel(channel), *cause])


def step_frames(channel: Channel, step: Step, system: str) -> list[bytes]:
    """The frames the node sends every session reading call events, for one step."""
    kind = step.kind
    if kind is Kind.CREATED:
        return [
            _event("Newchannel", system, _channel(channel, caller_set=False)),
            _dial("DialBegin", channel, system, ("DialString", channel.dialed.dial_string)),
        ]
    if kind is Kind.RINGING:
        return [
            _event("Newstate", system, _channel(channel)),
            _dial("DialState", channel, system, ("DialStatus", "RINGING")),
        ]
    if kind is Kind.ANSWERED:
        return [
            _event("Newstate", system, _channel(channel)),
            _originate_response(channel.dialed, system, channel.name, 4, True),
            _dial("DialEnd", channel, system, ("DialStatus", "ANSWER")),
        ]
    if kind is Kind.REPORT:
        keys = [("UserEvent", step.report), *step.keys.items()]
        return [_event("UserEvent", system, [*_channel(channel), *keys], privilege="user,all")]
    if kind is Kind.DIAL_END:
        return [_dial("DialEnd", channel, system, ("DialStatus", step.status))]
    if kind is Kind.ORIGINATE_FAILED:
        dialed = channel.dialed
        return [_originate_response(dialed, system, f"PJSIP/{dialed.dial_string}", step.reason, False)]
    return [_hangup(channel, step, system)]


def refused_frame(dialed: Dialed, system: str) -> bytes:
    """An Originate the node made no channel for: its OriginateResponse alone (the recording of
    a dial to a trunk the node does not know; an Asterisk over its maxcalls says the same)."""
    return _originate_response(dialed, system, f"PJSIP/{dialed.dial_string}", 0, False)


def fully_booted(uptime_s: int) -> bytes:
    return frame(
        [
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Uptime", uptime_s),
            ("LastReload", uptime_s),
            ("Status", "Fully Booted"),
        ]
    )


def channel_listing(channel: Channel, action_id: str, now: float) -> bytes:
    """One CoreShowChannel of a CoreShowChannels reply."""
    up = channel.state == 6
    return frame(
        [
            ("Event", "CoreShowChannel"),
            ("ActionID", action_id),
            *_channel(channel),
            ("Application", "Playback" if up else "AppDial2"),
            ("ApplicationData", "" if up else "(Outgoing Line)"),
            ("Duration", _duration(now - channel.created_mono)),
            ("BridgeId", ""),
        ]
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
