"""How Asterisk's view of an attempt (its channel's events) becomes a call status. Pure: no I/O.

What Asterisk sends for each outcome is written down in docs/asterisk.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain import q850
from orchestrator.domain.call import CallStatus

# An originate's reply reasons, in Asterisk's codes (enum ast_control_frame_type, a subset): the
# ARI driver gives a channel's end in them too.
REASON_FAILURE = 0
REASON_HANGUP = 1
REASON_RING_TIMEOUT = 3
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8

_NO_ANSWER_CAUSES = frozenset({q850.NO_USER_RESPONSE, q850.NO_ANSWER})


@dataclass(frozen=True)
class Ending:
    """The final word on an attempt: the call's status and the Q.850 cause behind it."""

    status: CallStatus
    cause: int
    cause_text: str
    reason: str = ""
    retryable: bool = True
    """False when trying again would only repeat it: the far end turned the call down."""


REJECTED_REASON = "rejected by the far end (declined, or refused by the carrier): not retried"


def status_for_channel_state(state_desc: str) -> CallStatus | None:
    """The outbound channel's new state: the far end rings, or answers."""
    normalized = state_desc.strip().lower()
    if normalized == "ringing":
        return CallStatus.RINGING
    if normalized == "up":
        return CallStatus.IN_PROGRESS
    return None


NO_RESPONSE_REASON = "the far end never responded (no 180/183 before the timeout)"


def ending_for_hangup(
    cause: int, *, answered: bool, cancel_requested: bool, far_end_responded: bool = True
) -> Ending:
    """The hangup carries the cause; whether the call was ever answered decides `completed`.

    Asterisk reports a ring timeout as cause 19 even when the far end never said a word (an
    unreachable carrier): that is a failure, not a person who did not pick up.
    """
    text = q850.cause_text(cause)
    if answered:
        return Ending(CallStatus.COMPLETED, cause, text)
    if cancel_requested:
        return Ending(CallStatus.CANCELED, cause, text, reason="canceled by request")
    if cause == q850.USER_BUSY:
        return Ending(CallStatus.BUSY, cause, text)
    if cause == q850.CALL_REJECTED:  # SIP 603 Decline, or 403 from the carrier
        return Ending(CallStatus.FAILED, cause, text, reason=REJECTED_REASON, retryable=False)
    if cause in _NO_ANSWER_CAUSES:
        if not far_end_responded:
            return Ending(CallStatus.FAILED, cause, text, reason=NO_RESPONSE_REASON)
        return Ending(CallStatus.NO_ANSWER, cause, text)
    return Ending(CallStatus.FAILED, cause, text)


def ending_for_originate_failure(
    reason: int, *, cancel_requested: bool, far_end_responded: bool = True
) -> Ending:
    """A failed originate with no hangup to explain it (e.g. an unknown endpoint)."""
    if cancel_requested:
        return Ending(CallStatus.CANCELED, 0, q850.cause_text(0), reason="canceled by request")
    if reason == REASON_BUSY:
        return Ending(CallStatus.BUSY, q850.USER_BUSY, q850.cause_text(q850.USER_BUSY))
    if reason == REASON_RING_TIMEOUT:
        if not far_end_responded:
            return Ending(
                CallStatus.FAILED, q850.NO_ANSWER, q850.cause_text(q850.NO_ANSWER), reason=NO_RESPONSE_REASON
            )
        return Ending(CallStatus.NO_ANSWER, q850.NO_ANSWER, q850.cause_text(q850.NO_ANSWER))
    if reason == REASON_CONGESTION:
        return Ending(CallStatus.FAILED, 34, q850.cause_text(34), reason="congestion")
    return Ending(CallStatus.FAILED, 0, q850.cause_text(0), reason=f"originate failed (reason {reason})")


_CDR_ENDINGS = {
    "ANSWERED": (CallStatus.COMPLETED, q850.NORMAL_CLEARING),
    "BUSY": (CallStatus.BUSY, q850.USER_BUSY),
    "NO ANSWER": (CallStatus.NO_ANSWER, q850.NO_ANSWER),
    "FAILED": (CallStatus.FAILED, 0),
    "CONGESTION": (CallStatus.FAILED, 0),
}


def ending_for_cdr(disposition: str, reason: str) -> Ending | None:
    """How a call ended by the node's own record (its CDR), for a channel that ended while no
    dispatcher listened. None for a disposition we do not know."""
    found = _CDR_ENDINGS.get(disposition.strip().upper())
    if found is None:
        return None
    status, cause = found
    return Ending(status, cause, q850.cause_text(cause), reason=reason)
