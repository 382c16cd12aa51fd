"""ARI events (the WebSocket's JSON) as the domain's typed events. Pure: no I/O.

The attempt is the channel's id (for Dial, the peer's: the dialed channel). Each event is
recorded under the name and fields the event log has always had for ARI nodes, which are AMI's
(`ari.Newchannel`, `ari.Hangup` with `Cause`…), so one query reads both drivers' calls.

Verified on Asterisk 22.10.1 (see docs/asterisk.md for the AMI side):
- answered: ChannelCreated(Down), Dial "", ChannelStateChange(Up), Dial ANSWER, userevents,
  ChannelDestroyed cause 16 (state Up)
- 486 busy: ChannelCreated, Dial "", Dial BUSY, ChannelDestroyed cause 17 (tech_cause 486)
- 180 then ring timeout: ChannelCreated, Dial "", Dial RINGING, ChannelStateChange(Ringing),
  ChannelDestroyed cause 19 (tech_cause 480); no final Dial event
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from orchestrator.asterisk.vocabulary import DIAL_PROGRESS, cause_number, dial_event, dialplan_report
from orchestrator.domain.dialing import OriginateOutcome
from orchestrator.domain.events import (
    ChannelCreated,
    ChannelEvent,
    ChannelHungUp,
    ChannelState,
    EventHead,
    Recorded,
)
from orchestrator.domain.outcome import (
    REASON_ANSWERED,
    REASON_BUSY,
    REASON_CONGESTION,
    REASON_FAILURE,
    REASON_RING_TIMEOUT,
)

EVENT_TYPES = ("ChannelCreated", "ChannelStateChange", "Dial", "ChannelDestroyed", "ChannelUserevent")
"""The ARI events mapped; the app's event filter asks Asterisk for these only."""

# Asterisk's ast_state2str() names and their numbers (recorded as ChannelState).
_STATE_NUMBERS = {
    "Down": 0,
    "Rsrvd": 1,
    "OffHook": 2,
    "Dialing": 3,
    "Ring": 4,
    "Ringing": 5,
    "Up": 6,
    "Busy": 7,
    "Dialing Offhook": 8,
    "Pre-ring": 9,
}
# Q.850 causes → an originate's reason in Asterisk's codes. AMI itself is vaguer (Reason 0 for
# busy and 503, docs/asterisk.md); the outcome comes from the cause, as with AMI's Hangup.
_CAUSE_REASONS = {17: REASON_BUSY, 18: REASON_RING_TIMEOUT, 19: REASON_RING_TIMEOUT}
_CONGESTION_CAUSES = frozenset({34, 38, 41, 42})


def _text(value: object) -> str:
    return "" if value is None else str(value)


def reason_for_cause(cause: int) -> int:
    """An originate's reason (Asterisk's codes) for a call that ended with this Q.850 cause."""
    if cause in _CONGESTION_CAUSES:
        return REASON_CONGESTION
    return _CAUSE_REASONS.get(cause, REASON_FAILURE)


def dial_event_name(dial_status: str) -> str:
    """The name a Dial is recorded under, as Asterisk's manager names it: no status yet →
    DialBegin, progress → DialState, else DialEnd."""
    if not dial_status:
        return "DialBegin"
    return "DialState" if dial_status.upper() in DIAL_PROGRESS else "DialEnd"


def _channel_record(channel: Mapping[str, Any]) -> dict[str, str]:
    """The channel's fields as recorded: `Channel` is its id (ARI addresses channels by id)."""
    state = _text(channel.get("state"))
    fields = {
        "Channel": _text(channel.get("id")),
        "ChannelName": _text(channel.get("name")),
        "ChannelStateDesc": state,
    }
    if state in _STATE_NUMBERS:
        fields["ChannelState"] = str(_STATE_NUMBERS[state])
    return fields


def _created(head: EventHead, event: Mapping[str, Any], channel: dict[str, str]) -> ChannelEvent:
    head["recorded"] = Recorded("Newchannel", channel)
    return ChannelCreated(**head, channel=channel["Channel"])


def _state_change(head: EventHead, event: Mapping[str, Any], channel: dict[str, str]) -> ChannelEvent:
    head["recorded"] = Recorded("Newstate", channel)
    return ChannelState(**head)


def _dial(head: EventHead, event: Mapping[str, Any], channel: dict[str, str]) -> ChannelEvent:
    status = _text(event.get("dialstatus"))
    head["recorded"] = Recorded(dial_event_name(status), channel | {"DialStatus": status})
    return dial_event(head, status)


def _destroyed(head: EventHead, event: Mapping[str, Any], channel: dict[str, str]) -> ChannelEvent:
    cause = event.get("cause")
    fields = channel | {
        "Cause": _text(cause if cause is not None else 0),
        "Cause-txt": _text(event.get("cause_txt")),
    }
    if event.get("tech_cause") is not None:
        fields["TechCause"] = _text(event["tech_cause"])  # the SIP status, e.g. 486
    head["recorded"] = Recorded("Hangup", fields)
    return ChannelHungUp(**head, cause=cause_number(cause), cause_text=fields["Cause-txt"])


def _userevent(head: EventHead, event: Mapping[str, Any], channel: dict[str, str]) -> ChannelEvent:
    name = _text(event.get("eventname"))
    userevent = event.get("userevent")
    keys = (
        {str(k): _text(v) for k, v in userevent.items() if k != "eventname"}
        if isinstance(userevent, Mapping)
        else {}
    )
    # The event's own keys first, so they can never replace the channel's fields.
    head["recorded"] = Recorded("UserEvent", keys | channel | {"UserEvent": name})
    return dialplan_report(head, name, keys)


_KINDS: dict[str, Callable[[EventHead, Mapping[str, Any], dict[str, str]], ChannelEvent]] = {
    "ChannelCreated": _created,
    "ChannelStateChange": _state_change,
    "Dial": _dial,
    "ChannelDestroyed": _destroyed,
    "ChannelUserevent": _userevent,
}


def ari_event(event: Mapping[str, Any], at: datetime) -> ChannelEvent | None:
    """The typed event of one ARI event received at `at`; None for events the domain does not
    use, or that name no channel (a user event raised without one)."""
    make = _KINDS.get(_text(event.get("type")))
    channel = event.get("peer") if event.get("type") == "Dial" else event.get("channel")
    if make is None or not isinstance(channel, Mapping) or not channel.get("id"):
        return None
    head = EventHead(attempt_id=_text(channel["id"]), at=at, state=_text(channel.get("state")), recorded=None)
    return make(head, event, _channel_record(channel))


def outcome_for(event: ChannelEvent) -> OriginateOutcome | None:
    """What an originate waiting on this channel learns from one of its events, if anything:
    the channel came up (answered), or it ended without being answered."""
    if event.state == "Up":
        return OriginateOutcome(success=True, reason=REASON_ANSWERED)
    if isinstance(event, ChannelHungUp):
        return OriginateOutcome(success=False, reason=reason_for_cause(event.cause))
    return None
