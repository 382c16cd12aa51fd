"""What ARI says of a simulated channel's step: the event WebSocket's JSON and the channel objects
of REST, with Asterisk 22's fields (tests/fixtures/ari/*.jsonl). Pure: no I/O.

Only the event types the dispatcher's event filter lets through are made (ChannelCreated,
ChannelStateChange, Dial, ChannelUserevent, ChannelDestroyed): the ChannelVarset and
ChannelDialplan chatter a socket without a filter would also get is not simulated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.fake_asterisk.calls import INBOUND, Kind, Step
from bench.fake_asterisk.node import Channel

OUTGOING_LINE = ("AppDial2", "(Outgoing Line)")


def timestamp(at: datetime | None = None) -> str:
    """ARI's form: 2026-12-07T02:14:40.071+0000."""
    at = at or datetime.now(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}+0000"


def channel_object(channel: Channel, *, app: tuple[str, str] = OUTGOING_LINE) -> dict[str, Any]:
    caller = {"name": "", "number": channel.dialed.caller}
    where = channel.where
    return {
        "id": channel.uniqueid,
        "name": channel.name,
        "state": channel.state_name,
        "protocol_id": channel.protocol_id,
        "caller": caller,
        "connected": dict(caller),
        "accountcode": "",
        "dialplan": {
            "context": where.context,
            "exten": where.exten,
            "priority": where.priority,
            "app_name": app[0],
            "app_data": app[1],
        },
        "creationtime": timestamp(channel.created_at),
        "language": "en",
    }


def _created(channel: Channel) -> dict[str, Any]:
    """ChannelCreated's channel: nothing of the dial is known yet."""
    blank = channel_object(channel, app=("", ""))
    nobody = {"name": "", "number": ""}
    dialplan = {"context": INBOUND, "exten": "s", "priority": 1, "app_name": "", "app_data": ""}
    return blank | {"protocol_id": "", "caller": nobody, "connected": dict(nobody), "dialplan": dialplan}


def _dial(channel: Channel, status: str, at: str) -> dict[str, Any]:
    return {
        "type": "Dial",
        "timestamp": at,
        "dialstatus": status,
        "forward": "",
        "dialstring": channel.dialed.dial_string,
        "peer": channel_object(channel),
    }


def _state_change(channel: Channel, at: str) -> dict[str, Any]:
    return {"type": "ChannelStateChange", "timestamp": at, "channel": channel_object(channel)}


def _userevent(channel: Channel, step: Step, at: str) -> dict[str, Any]:
    data = ",".join([step.report, *(f"{key}: {value}" for key, value in step.keys.items())])
    return {
        "type": "ChannelUserevent",
        "timestamp": at,
        "eventname": step.report,
        "userevent": {"eventname": step.report, **step.keys},
        "channel": channel_object(channel, app=("UserEvent", data)),
    }


def _destroyed(channel: Channel, step: Step, at: str) -> dict[str, Any]:
    assert step.ending is not None
    ending = step.ending
    tech = {"tech_cause": ending.tech_cause} if ending.tech_cause is not None else {}
    return {
        "type": "ChannelDestroyed",
        "timestamp": at,
        "cause": ending.cause,
        "cause_txt": ending.text,
        **tech,
        "channel": channel_object(channel),
    }


def step_messages(channel: Channel, step: Step) -> list[dict[str, Any]]:
    """The events of one step, without the two fields each socket adds (asterisk_id, application)."""
    at = timestamp()
    kind = step.kind
    if kind is Kind.CREATED:
        created = {"type": "ChannelCreated", "timestamp": at, "channel": _created(channel)}
        return [created, _dial(channel, "", at)]
    if kind is Kind.RINGING:
        return [_state_change(channel, at), _dial(channel, "RINGING", at)]
    if kind is Kind.ANSWERED:
        return [_state_change(channel, at), _dial(channel, "ANSWER", at)]
    if kind is Kind.REPORT:
        return [_userevent(channel, step, at)]
    if kind is Kind.DIAL_END:
        return [_dial(channel, step.status, at)]
    if kind is Kind.HANGUP:
        return [_destroyed(channel, step, at)]
    return []  # ORIGINATE_FAILED: AMI's alone (an ARI client's POST was answered already)
