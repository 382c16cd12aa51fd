"""One attempt at reaching a number, followed through its node's events. Pure: no I/O.

The dispatcher feeds every event of an attempt's channel (domain/events.py, whichever driver
runs the node) to `AttemptState.on_event` and stores whatever `Transition` comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from orchestrator.domain.call import CallStatus
from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelCreated,
    ChannelEvent,
    ChannelHungUp,
    ChannelProgress,
    ChannelRinging,
    ChannelState,
)
from orchestrator.domain.outcome import (
    Ending,
    ending_for_cdr,
    ending_for_hangup,
    ending_for_originate_failure,
    status_for_channel_state,
)
from orchestrator.domain.retry import RetryPolicy


@dataclass(frozen=True)
class Transition:
    attempt_id: UUID
    call_id: UUID
    status: CallStatus
    at: datetime
    answered: bool = False
    ending: Ending | None = None
    channel: str | None = None
    retry_at: datetime | None = None
    """Set on an attempt's final transition when the call's policy tries again then: the call
    goes back to `queued` instead of ending."""


@dataclass
class AttemptState:
    attempt_id: UUID
    call_id: UUID
    node: str
    status: CallStatus = CallStatus.INITIATED
    channel: str | None = None
    answered: bool = False
    cancel_requested: bool = False
    far_end_responded: bool = False
    """Set by ringing or progress (180/183): tells a ring timeout from an unreachable carrier."""
    channel_made: bool = False
    """Set by the dispatcher at the node's first channel event: the node made the call's
    channel. A failed Originate without one was refused by the node, and dialed nothing."""
    number: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def ended(self) -> bool:
        return self.status.is_final

    def on_event(self, event: ChannelEvent) -> Transition | None:
        """Advance on one event of the attempt's channel; None when it changes nothing."""
        if self.ended:
            return None
        match event:
            case ChannelCreated():
                self.channel = event.channel or self.channel
                return None
            case ChannelState():
                return self._on_state(event)
            case ChannelRinging():
                self.far_end_responded = True
                return self._advance(CallStatus.RINGING, event.at)
            case ChannelProgress():
                self.far_end_responded = True
                return None
            case ChannelAnswered():
                return self._advance(CallStatus.IN_PROGRESS, event.at, answered=True)
            case ChannelHungUp():
                return self._on_hangup(event)
        # Every other event still says the channel's state: an "Up" seen without its answer
        # means the answer itself was missed (no dispatcher listened at that moment).
        if _missed_answer(self, event):
            return self._advance(CallStatus.IN_PROGRESS, event.at, answered=True)
        return None

    def _on_state(self, event: ChannelState) -> Transition | None:
        status = status_for_channel_state(event.state)
        if status is None:
            return None
        self.far_end_responded = True
        return self._advance(status, event.at, answered=status is CallStatus.IN_PROGRESS)

    def _on_hangup(self, event: ChannelHungUp) -> Transition | None:
        missed_answer = _missed_answer(self, event)
        if missed_answer:
            self.answered = True
        ending = ending_for_hangup(
            event.cause,
            answered=self.answered,
            cancel_requested=self.cancel_requested,
            far_end_responded=self.far_end_responded,
        )
        return self._advance(ending.status, event.at, ending=ending, answered=missed_answer)

    def on_originate_response(self, success: bool, reason: int, at: datetime) -> Transition | None:
        """Success means answered. A failure is only provisional: the hangup that usually
        follows carries the real cause, so the caller waits briefly before `on_originate_failed`."""
        if success:
            return self._advance(CallStatus.IN_PROGRESS, at, answered=True)
        return None

    def on_originate_failed(self, reason: int, at: datetime) -> Transition | None:
        ending = ending_for_originate_failure(
            reason, cancel_requested=self.cancel_requested, far_end_responded=self.far_end_responded
        )
        return self._advance(ending.status, at, ending=ending)

    def on_lost(
        self, reason: str, at: datetime, *, may_ring_until: datetime | None = None
    ) -> Transition | None:
        """The attempt outlived every bound, or its node vanished: it failed. A node that is only
        cut off goes on ringing its calls unseen, up to `may_ring_until`: a retry waits until then,
        so the callee never has two of our calls ringing at once."""
        ending = Ending(CallStatus.FAILED, 0, "Unknown", reason=reason)
        return self._advance(CallStatus.FAILED, at, ending=ending, retry_not_before=may_ring_until)

    def on_ended_unseen(self, disposition: str | None, reason: str, at: datetime) -> Transition | None:
        """The channel ended while nobody was listening, and the node's CDR (if any) says how:
        ANSWERED, BUSY, NO ANSWER, FAILED. Without a CDR, as `on_vanished`."""
        ending = (
            ending_for_cdr(disposition, f"{reason}; outcome from the node's CDR") if disposition else None
        )
        if ending is None:
            return self.on_vanished(reason, at)
        if self.cancel_requested and ending.status is not CallStatus.COMPLETED:
            ending = Ending(
                CallStatus.CANCELED, ending.cause, ending.cause_text, reason="canceled by request"
            )
        answered = ending.status is CallStatus.COMPLETED
        return self._advance(ending.status, at, ending=ending, answered=answered and not self.answered)

    def on_vanished(self, reason: str, at: datetime) -> Transition | None:
        """The channel ended while nobody was listening (its link down) and no CDR says how: an
        answered call completed as far as anyone can tell; an unanswered one failed."""
        if self.answered:
            return self._advance(
                CallStatus.COMPLETED, at, ending=Ending(CallStatus.COMPLETED, 0, "Unknown", reason)
            )
        return self.on_lost(reason, at)

    def _advance(
        self,
        status: CallStatus,
        at: datetime,
        *,
        answered: bool = False,
        ending: Ending | None = None,
        retry_not_before: datetime | None = None,
    ) -> Transition | None:
        if status.rank <= self.status.rank:
            return None
        self.status = status
        if answered:
            self.answered = True
        retry_at = None
        # Somebody picked up: dialing them again (after the node died mid-message, say) would
        # reach the same person twice. Only attempts that never connected are retried.
        retryable = ending is None or ending.retryable
        if status.is_final and retryable and not self.cancel_requested and not self.answered:
            retry_at = self.retry.next_attempt_at(status, self.number, at)
            if retry_at is not None and retry_not_before is not None:
                retry_at = max(retry_at, retry_not_before)
        return Transition(
            self.attempt_id,
            self.call_id,
            status,
            at,
            answered=answered,
            ending=ending,
            channel=self.channel,
            retry_at=retry_at,
        )


def _missed_answer(state: AttemptState, event: ChannelEvent) -> bool:
    return not state.answered and event.state.lower() == "up"
