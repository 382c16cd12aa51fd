"""What a call heard back, beyond its status: the digits pressed, who (or what) answered, an
operator's dialplan hook results. Pure: no I/O.

The dialplan's reports (domain/events.py) become `CallFact`s that the dispatcher stores in
order with the call's status transitions: a callback reports `answered`, then `digits`, then
`completed`, as they happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from orchestrator.domain.attempt import Transition
from orchestrator.domain.events import ChannelEvent, DigitsPressed, HookReported, MachineVerdict
from orchestrator.domain.interaction import DIGIT_KEY, HOOK_NAME, HOOK_VALUE, AnsweredBy, answered_by


@dataclass(frozen=True, kw_only=True)
class CallFact:
    attempt_id: UUID
    call_id: UUID
    at: datetime
    digits: str | None = None
    answered_by: AnsweredBy | None = None
    hook: tuple[str, str] | None = None
    """(name, value)."""


def fact_of(attempt_id: UUID, call_id: UUID, event: ChannelEvent) -> CallFact | None:
    """The fact a dialplan report gives; None for any other event, or a report whose words the
    dialplan's own filters would never have let through (then it is only recorded)."""
    match event:
        case DigitsPressed() if DIGIT_KEY.fullmatch(event.digits):
            return CallFact(attempt_id=attempt_id, call_id=call_id, at=event.at, digits=event.digits)
        case MachineVerdict():
            verdict = answered_by(event.status, event.end or None)
            return CallFact(attempt_id=attempt_id, call_id=call_id, at=event.at, answered_by=verdict)
        case HookReported() if HOOK_NAME.fullmatch(event.hook) and HOOK_VALUE.fullmatch(event.value):
            hook = (event.hook, event.value)
            return CallFact(attempt_id=attempt_id, call_id=call_id, at=event.at, hook=hook)
    return None


Change = Transition | CallFact
"""What the dispatcher stores of an attempt, in the order it happened."""
