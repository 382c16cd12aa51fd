"""The `status` event written for a stored transition says what happened to the call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.outcome import Ending
from orchestrator.domain.records import StoredStatus

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BUSY = Ending(CallStatus.BUSY, 17, "User busy")


def _busy(retry_at: datetime) -> Transition:
    return Transition(uuid.uuid4(), uuid.uuid4(), CallStatus.BUSY, AT, ending=BUSY, retry_at=retry_at)


def test_a_plain_status() -> None:
    ringing = Transition(uuid.uuid4(), uuid.uuid4(), CallStatus.RINGING, AT)
    assert ringing.event_data(StoredStatus(CallStatus.RINGING)) == {"status": "ringing"}


def test_a_final_status_carries_its_cause_and_reason() -> None:
    lost = Transition(
        uuid.uuid4(),
        uuid.uuid4(),
        CallStatus.FAILED,
        AT,
        ending=Ending(CallStatus.FAILED, 0, "Unknown", "node lost"),
    )
    assert lost.event_data(StoredStatus(CallStatus.FAILED)) == {
        "status": "failed",
        "cause": 0,
        "cause_text": "Unknown",
        "reason": "node lost",
    }


def test_a_retry_puts_the_call_back_in_the_queue() -> None:
    retry_at = AT + timedelta(seconds=30)
    data = _busy(retry_at=retry_at).event_data(StoredStatus(CallStatus.QUEUED, "retrying after busy"))
    assert data == {
        "status": "queued",
        "retry_after": "busy",
        "retry_at": retry_at.isoformat(),
        "cause": 17,
        "cause_text": "User busy",
    }


def test_a_retry_stopped_by_a_cancel_ends_the_call_canceled() -> None:
    data = _busy(retry_at=AT).event_data(StoredStatus(CallStatus.CANCELED, "campaign canceled"))
    assert data == {
        "status": "canceled",
        "attempt_status": "busy",
        "cause": 17,
        "cause_text": "User busy",
        "reason": "campaign canceled",
    }
