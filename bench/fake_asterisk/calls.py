"""A simulated call's plan: which far end it meets, and what its channel does, when. Pure.

The far end is chosen by the trunk's name, as this stack's SIPp carriers are (README, "Reaching
each outcome"): `busy` answers 486, `noanswer` rings until the ring timeout, `unavailable`
answers 503, any other trunk answers the call. The steps, their order and their causes are those
of the recordings in tests/fixtures/ (Asterisk 22 against those carriers).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

INBOUND = "sespcl-inbound"
"""The context Asterisk gives an originated channel until it is answered (the recordings')."""


class Outcome(enum.Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNAVAILABLE = "unavailable"


FAR_ENDS: Mapping[str, Outcome] = {
    "busy": Outcome.BUSY,
    "noanswer": Outcome.NO_ANSWER,
    "unavailable": Outcome.UNAVAILABLE,
}


def outcome_of(trunk: str) -> Outcome:
    return FAR_ENDS.get(trunk, Outcome.ANSWERED)


@dataclass(frozen=True)
class Behaviour:
    """How a node's calls go: at most `capacity` channels at once (one more is refused, as an
    Asterisk over its `maxcalls` refuses: no channel at all), the far end's answer after
    `answer_delay_s` (ringing meanwhile), and an answered call's playback lasting `call_s`."""

    capacity: int = 500
    answer_delay_s: float = 0.0
    call_s: float = 0.0


@dataclass(frozen=True)
class Where:
    """A channel's place in the dialplan, as its events name it."""

    context: str = INBOUND
    exten: str = "s"
    priority: int = 1


ANSWERED_AT = Where("sespcl-outbound", "s", 12)
PLAYED_AT = Where("sespcl-outbound", "s", 14)
HUNG_UP_AT = Where("sespcl-outbound", "s", 15)
MAX_LENGTH_AT = Where("sespcl-outbound", "T", 1)
MAX_LENGTH_HANGUP_AT = Where("sespcl-outbound", "T", 2)


@dataclass(frozen=True)
class Ending:
    """A hangup's Q.850 cause, its text, and the SIP status that caused it (if any)."""

    cause: int
    text: str
    tech_cause: int | None = None


NORMAL_CLEARING = Ending(16, "Normal Clearing")
USER_BUSY = Ending(17, "User busy", 486)
NO_ANSWER = Ending(19, "User alerting, no answer", 480)
CONGESTION = Ending(34, "Circuit/channel congestion", 503)
CAUSE_TEXTS = {16: "Normal Clearing", 17: "User busy", 19: "User alerting, no answer", 21: "Call Rejected"}

REASON_HUNG_UP = 1
REASON_RING_TIMEOUT = 3
REASON_FAILED = 0


class Kind(enum.Enum):
    CREATED = "created"
    """The channel made and its dial begun (AMI: Newchannel, DialBegin; ARI: ChannelCreated, Dial)."""
    RINGING = "ringing"
    ANSWERED = "answered"
    REPORT = "report"
    """One of the dialplan's UserEvents."""
    DIAL_END = "dial_end"
    ORIGINATE_FAILED = "originate_failed"
    """AMI's OriginateResponse for a call not answered (ARI has none: its POST was answered)."""
    HANGUP = "hangup"


@dataclass(frozen=True)
class Step:
    at_s: float
    """After the Originate."""
    kind: Kind
    where: Where = Where()
    status: str = ""
    """DIAL_END's DialStatus."""
    reason: int = 0
    """ORIGINATE_FAILED's Reason."""
    report: str = ""
    keys: Mapping[str, str] = field(default_factory=dict)
    """REPORT's UserEvent name and its `Key: Value` pairs."""
    ending: Ending | None = None


@dataclass(frozen=True)
class Dialed:
    """What an Originate (AMI) or a POST /channels (ARI) asked for."""

    uniqueid: str
    trunk: str
    number: str
    caller: str
    """The caller id number, or "<unknown>" (Asterisk's word for none)."""
    call_id: str
    ring_timeout_s: float
    max_call_s: float
    """0: no limit."""
    action_id: str = ""
    context: str = "sespcl-outbound"

    @property
    def dial_string(self) -> str:
        return f"{self.number}@{self.trunk}"


def dialed_endpoint(endpoint: str) -> tuple[str, str] | None:
    """(number, trunk) of "PJSIP/+14155552671@demo"; None for any other technology or shape."""
    tech, _, resource = endpoint.partition("/")
    number, at, trunk = resource.partition("@")
    if tech != "PJSIP" or not at or not number or not trunk:
        return None
    return number, trunk


def _answered(dialed: Dialed, behaviour: Behaviour) -> list[Step]:
    answer = behaviour.answer_delay_s
    steps = [Step(0.0, Kind.RINGING)] if answer > 0 else []
    called = {"CallId": dialed.call_id}
    steps += [
        Step(answer, Kind.ANSWERED),
        Step(answer, Kind.REPORT, ANSWERED_AT, report="SespclAnswered", keys=called),
    ]
    if 0 < dialed.max_call_s < behaviour.call_s:
        end = answer + dialed.max_call_s
        return steps + [
            Step(end, Kind.REPORT, MAX_LENGTH_AT, report="SespclMaxCallLength", keys=called),
            Step(end, Kind.HANGUP, MAX_LENGTH_HANGUP_AT, ending=NORMAL_CLEARING),
        ]
    end = answer + behaviour.call_s
    return steps + [
        Step(end, Kind.REPORT, PLAYED_AT, report="SespclPlaybackDone", keys=called | {"Status": "SUCCESS"}),
        Step(end, Kind.HANGUP, HUNG_UP_AT, ending=NORMAL_CLEARING),
    ]


def plan(dialed: Dialed, behaviour: Behaviour) -> list[Step]:
    """Every step of the call's channel, in the order the node tells them."""
    steps = [Step(0.0, Kind.CREATED)]
    outcome = outcome_of(dialed.trunk)
    answer = behaviour.answer_delay_s
    if outcome is Outcome.ANSWERED:
        return steps + _answered(dialed, behaviour)
    if outcome is Outcome.BUSY:
        return steps + [
            Step(answer, Kind.DIAL_END, status="BUSY"),
            Step(answer, Kind.ORIGINATE_FAILED, reason=REASON_FAILED),
            Step(answer, Kind.HANGUP, ending=USER_BUSY),
        ]
    if outcome is Outcome.UNAVAILABLE:
        return steps + [
            Step(answer, Kind.ORIGINATE_FAILED, reason=REASON_FAILED),
            Step(answer, Kind.DIAL_END, status="CONGESTION"),
            Step(answer, Kind.HANGUP, ending=CONGESTION),
        ]
    ring = dialed.ring_timeout_s
    return steps + [
        Step(0.0, Kind.RINGING),
        Step(ring, Kind.ORIGINATE_FAILED, reason=REASON_RING_TIMEOUT),
        Step(ring, Kind.HANGUP, ending=NO_ANSWER),
    ]


def hangup_steps(answered: bool, cause: int) -> list[Step]:
    """A Hangup asked of the node (the dispatcher's cancel). Not in the recordings: an answered
    channel ends with the cause asked; one still dialing also fails its Originate (reason 1,
    hung up) and ends its dial CANCEL."""
    ending = Ending(cause, CAUSE_TEXTS.get(cause, "Unknown"))
    if answered:
        return [Step(0.0, Kind.HANGUP, HUNG_UP_AT, ending=ending)]
    return [
        Step(0.0, Kind.DIAL_END, status="CANCEL"),
        Step(0.0, Kind.ORIGINATE_FAILED, reason=REASON_HUNG_UP),
        Step(0.0, Kind.HANGUP, ending=ending),
    ]
