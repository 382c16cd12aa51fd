"""AMI events (one frame's `Key: Value` headers) as the domain's typed events. Pure: no I/O.

An originated channel's Uniqueid is its Originate's ChannelId, the attempt id. Its Dial events
name it only as the destination (DestUniqueid: an Originate has no calling channel). Each event
is recorded as it came (`ami.<Event>`, its headers), as before the events were typed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from orchestrator.asterisk.vocabulary import DIAL_PROGRESS, cause_number, dial_event, dialplan_report
from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelCreated,
    ChannelEvent,
    ChannelHungUp,
    ChannelState,
    DialUpdate,
    EventHead,
    Recorded,
)

_Make = Callable[[EventHead, Mapping[str, str]], ChannelEvent]


def _dial_state(head: EventHead, fields: Mapping[str, str]) -> ChannelEvent:
    """Ringing or progress; any other status here moves nothing."""
    status = fields.get("DialStatus", "")
    if status.upper() in DIAL_PROGRESS:
        return dial_event(head, status)
    return DialUpdate(**head, status=status)


def _dial_end(head: EventHead, fields: Mapping[str, str]) -> ChannelEvent:
    status = fields.get("DialStatus", "")
    if status.upper() == "ANSWER":
        return ChannelAnswered(**head)
    return DialUpdate(**head, status=status)


_KINDS: dict[str, _Make] = {
    "Newchannel": lambda head, fields: ChannelCreated(**head, channel=fields.get("Channel", "")),
    "Newstate": lambda head, fields: ChannelState(**head),
    "DialBegin": lambda head, fields: DialUpdate(**head, status=fields.get("DialStatus", "")),
    "DialState": _dial_state,
    "DialEnd": _dial_end,
    "Hangup": lambda head, fields: ChannelHungUp(
        **head, cause=cause_number(fields.get("Cause")), cause_text=fields.get("Cause-txt", "")
    ),
    "UserEvent": lambda head, fields: dialplan_report(head, fields.get("UserEvent", ""), fields),
}
EVENTS_WANTED = frozenset(_KINDS)
"""The AMI events that say something of a channel; every other (FullyBooted, an
OriginateResponse whose action is no longer waited for) is dropped."""


def attempt_of(name: str, fields: Mapping[str, str]) -> str:
    """The id of the channel the event is about: for a Dial event, the dialed one."""
    if name.startswith("Dial"):
        return fields.get("DestUniqueid") or fields.get("Uniqueid", "")
    return fields.get("Uniqueid", "")


def ami_event(fields: Mapping[str, str], at: datetime) -> ChannelEvent | None:
    """The typed event of one AMI event received at `at`; None for an event that names no
    channel or says nothing the domain uses."""
    name = fields.get("Event", "")
    make = _KINDS.get(name)
    attempt_id = attempt_of(name, fields)
    if make is None or not attempt_id:
        return None
    # AMI's Dial events give the dialed channel's state as DestChannelStateDesc: only an
    # event's own ChannelStateDesc has ever been read as the channel's state.
    state = fields.get("ChannelStateDesc", "")
    head = EventHead(attempt_id=attempt_id, at=at, state=state, recorded=Recorded(name, fields))
    return make(head, fields)
