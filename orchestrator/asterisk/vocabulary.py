"""What both drivers' mappers share: the words Asterisk and our dialplan use whichever protocol
carries them (a dial's status, a hangup's cause, the dialplan's reports), as typed events."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelEvent,
    ChannelProgress,
    ChannelRinging,
    DialplanAnswered,
    DialplanReport,
    DialUpdate,
    DigitsPressed,
    EventHead,
    HookReported,
    MachineVerdict,
    MaxCallLengthReached,
    PlaybackDone,
    PromptRejected,
)

DIAL_MOVES: dict[str, type[ChannelEvent]] = {
    "RINGING": ChannelRinging,
    "PROGRESS": ChannelProgress,
    "PROCEEDING": ChannelProgress,
    "ANSWER": ChannelAnswered,
}
"""The dial statuses that move an attempt; any other is a `DialUpdate`."""
DIAL_PROGRESS = frozenset({"RINGING", "PROGRESS", "PROCEEDING"})
"""Not final: the dial goes on (AMI reports these as DialState, the others as DialEnd)."""


def dial_event(head: EventHead, status: str) -> ChannelEvent:
    kind = DIAL_MOVES.get(status.upper())
    return kind(**head) if kind is not None else DialUpdate(**head, status=status)


def cause_number(value: object) -> int:
    """A hangup's Q.850 cause as a number; 0 (unknown) when absent or not a number."""
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


_Make = Callable[[EventHead, str, Mapping[str, str]], DialplanReport]

REPORTS: dict[str, _Make] = {
    "SespclAnswered": lambda head, name, keys: DialplanAnswered(**head, name=name),
    "SespclPlaybackDone": lambda head, name, keys: PlaybackDone(
        **head, name=name, status=keys.get("Status", "")
    ),
    "SespclRejected": lambda head, name, keys: PromptRejected(
        **head, name=name, reason=keys.get("Reason", "")
    ),
    "SespclMaxCallLength": lambda head, name, keys: MaxCallLengthReached(**head, name=name),
    "SespclDigits": lambda head, name, keys: DigitsPressed(**head, name=name, digits=keys.get("Digits", "")),
    "SespclMachine": lambda head, name, keys: MachineVerdict(
        **head, name=name, status=keys.get("Status", ""), cause=keys.get("Cause", ""), end=keys.get("End", "")
    ),
    "SespclHook": lambda head, name, keys: HookReported(
        **head, name=name, hook=keys.get("Name", ""), value=keys.get("Value", "")
    ),
}
"""The outbound dialplan's reports (UserEvents raised in asterisk-config/extensions.conf) by
name, each with its `Key: Value` pairs (AMI's UserEvent headers, ARI's `userevent` object); a
report added to the dialplan gets a line here."""


def dialplan_report(head: EventHead, name: str, keys: Mapping[str, str]) -> DialplanReport:
    make = REPORTS.get(name)
    return make(head, name, keys) if make is not None else DialplanReport(**head, name=name)
