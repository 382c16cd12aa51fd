"""Call statuses (Twilio's vocabulary) and the rule that a status only moves forward."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from orchestrator.domain.calling_hours import CallingWindow
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.webhooks import StatusCallback

if TYPE_CHECKING:
    from orchestrator.domain.retry import RetryPolicy


class CallStatus(str, Enum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def rank(self) -> int:
        """Position on the only road a call travels; every final status shares the last rank."""
        return _RANK[self]


LIVE_STATUSES = frozenset(
    {CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS}
)
DIALED_STATUSES = LIVE_STATUSES - {CallStatus.QUEUED}
"""Originated and not ended: a cancel asks the dispatcher to hang up."""
FINAL_STATUSES = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.FAILED,
        CallStatus.CANCELED,
    }
)
_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    **{status: 4 for status in FINAL_STATUSES},
}


def call_duration_s(answered_at: datetime | None, ended_at: datetime | None) -> float | None:
    """How long the callee was on the line, in seconds (to the ms): 0 for a call that ended
    unanswered, None for one not ended yet. The API's `duration_s` and the report's CSV."""
    if ended_at is None:
        return None
    if answered_at is None:
        return 0.0
    return round((ended_at - answered_at).total_seconds(), 3)


def can_transition(current: CallStatus, new: CallStatus) -> bool:
    """True when `new` lies strictly ahead of `current`; a final status never changes again.

    Late, repeated or out-of-order events therefore cannot move a call backwards.
    """
    return new.rank > current.rank


@dataclass(frozen=True)
class NewCall:
    """A validated request for one call, before it is stored."""

    id: UUID
    to: str
    from_: str | None
    trunk: str
    text: str
    voice: str
    audio_key: str
    ring_timeout_s: int
    metadata: dict[str, Any] | None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    window: CallingWindow | None = None
    time_zones: tuple[str, ...] | None = None
    retry: RetryPolicy | None = None
    created_by: str | None = None
    """The name of the API key that asked for it."""
    interaction: Interaction = field(default_factory=Interaction)
    """What the call asks of its callee besides hearing the prompt (a plain call: nothing)."""
    status_callback: StatusCallback | None = None
