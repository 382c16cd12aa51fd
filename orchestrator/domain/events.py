"""What a node says of one attempt's channel, in the domain's words: the events both drivers
(AMI, ARI) emit and `AttemptState.on_event` consumes. Pure: no I/O.

Every event names the attempt it concerns (the channel's id is the attempt's id), when it was
received, the channel's state as the event gives it, and how the event log records it. A kind
added later (digits pressed, a machine-detection verdict, a hook's result) is a new dataclass
here and a line in each driver's mapper: the dispatcher routes and records any `ChannelEvent`
alike, and `AttemptState` gives one it has no rule for the rule every event gets (an "Up"
channel seen before its answer means the answer was missed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict


@dataclass(frozen=True)
class Recorded:
    """How the event log (`call_events`) records an event: as `<driver>.<name>`, with `fields`
    filtered to those people read. The drivers keep the names and fields recorded before the
    events were typed, which dashboards and queries read."""

    name: str
    fields: Mapping[str, str]


class EventHead(TypedDict):
    """What every event carries, as the drivers' mappers gather it before choosing the kind."""

    attempt_id: str
    at: datetime
    state: str
    recorded: Recorded | None


@dataclass(frozen=True, kw_only=True)
class ChannelEvent:
    """Something a node said of one attempt's channel."""

    attempt_id: str
    """The attempt's id, which is its channel's id: the node names the channel by it."""
    at: datetime
    """When it was received."""
    state: str = ""
    """The channel's state as this event gives it, in Asterisk's words ("Down", "Ringing",
    "Up"); "" when it gives none."""
    recorded: Recorded | None = None
    """None: not recorded (a state read off a channel list)."""


@dataclass(frozen=True, kw_only=True)
class ChannelCreated(ChannelEvent):
    """The node made the attempt's channel."""

    channel: str
    """What the node calls the channel when hanging it up (AMI: its name; ARI: its id)."""


@dataclass(frozen=True, kw_only=True)
class ChannelState(ChannelEvent):
    """The channel's state and nothing else (it changed, or a channel list says so): ringing
    or up means the far end responded; up also answers a call whose answer went unseen."""


@dataclass(frozen=True, kw_only=True)
class ChannelRinging(ChannelEvent):
    """The far end rings (SIP 180)."""


@dataclass(frozen=True, kw_only=True)
class ChannelProgress(ChannelEvent):
    """The far end responded without ringing (SIP 183 early media, or proceeding): a later ring
    timeout is a callee who did not pick up, not an unreachable carrier."""


@dataclass(frozen=True, kw_only=True)
class ChannelAnswered(ChannelEvent):
    """The dial ended answered."""


@dataclass(frozen=True, kw_only=True)
class DialUpdate(ChannelEvent):
    """A dial report that moves nothing by itself: begun (status ""), or ended unanswered
    (BUSY, CONGESTION, NOANSWER, CHANUNAVAIL, CANCEL): the hangup that follows carries the
    cause."""

    status: str


@dataclass(frozen=True, kw_only=True)
class ChannelHungUp(ChannelEvent):
    """The channel ended, with its Q.850 cause."""

    cause: int
    cause_text: str = ""


@dataclass(frozen=True, kw_only=True)
class DialplanReport(ChannelEvent):
    """One of the outbound dialplan's own reports (asterisk-config/extensions.conf). A report
    this code has no class for arrives as this class, under its name."""

    name: str


@dataclass(frozen=True, kw_only=True)
class DialplanAnswered(DialplanReport):
    """The callee answered and the prompt starts."""


@dataclass(frozen=True, kw_only=True)
class PlaybackDone(DialplanReport):
    """The prompt was played to its end, or could not be (status FAILED)."""

    status: str


@dataclass(frozen=True, kw_only=True)
class PromptRejected(DialplanReport):
    """The dialplan refused to play the prompt (missing audio, a bad path) and hung up."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class MaxCallLengthReached(DialplanReport):
    """The node hung up a call that reached its longest allowed length."""


@dataclass(frozen=True, kw_only=True)
class DigitsPressed(DialplanReport):
    """The callee pressed keys while the call gathered them (the finishing key left out)."""

    digits: str


@dataclass(frozen=True, kw_only=True)
class MachineVerdict(DialplanReport):
    """AMD()'s verdict (AMDSTATUS: HUMAN, MACHINE, NOTSURE, HANGUP; AMDCAUSE) and, when the
    greeting's end was waited for, how it ended (`beep`, `silence`, `other`; "" when not)."""

    status: str
    cause: str = ""
    end: str = ""


@dataclass(frozen=True, kw_only=True)
class HookReported(DialplanReport):
    """An operator's dialplan context reported a result through `sespcl-hook`."""

    hook: str
    value: str
