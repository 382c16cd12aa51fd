from datetime import UTC, datetime
from uuid import uuid4

import pytest

from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.call import FINAL_STATUSES, CallStatus, can_transition
from orchestrator.domain.events import (
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    ChannelProgress,
    ChannelState,
    PlaybackDone,
)
from orchestrator.domain.outcome import ending_for_hangup, ending_for_originate_failure

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _hangup(cause: int, state: str = "") -> ChannelHungUp:
    return ChannelHungUp(attempt_id="a", at=NOW, cause=cause, state=state)


def _state(state: str) -> ChannelState:
    return ChannelState(attempt_id="a", at=NOW, state=state)


def test_status_moves_only_forward() -> None:
    assert can_transition(CallStatus.QUEUED, CallStatus.INITIATED)
    assert can_transition(CallStatus.RINGING, CallStatus.IN_PROGRESS)
    assert can_transition(CallStatus.QUEUED, CallStatus.CANCELED)
    assert not can_transition(CallStatus.IN_PROGRESS, CallStatus.RINGING)
    assert not can_transition(CallStatus.INITIATED, CallStatus.QUEUED)


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_final_status_never_changes(final: CallStatus) -> None:
    for other in CallStatus:
        assert not can_transition(final, other)


@pytest.mark.parametrize(
    ("cause", "answered", "expected"),
    [
        (16, True, CallStatus.COMPLETED),
        (17, False, CallStatus.BUSY),
        (19, False, CallStatus.NO_ANSWER),
        (18, False, CallStatus.NO_ANSWER),
        (34, False, CallStatus.FAILED),
        (38, False, CallStatus.FAILED),
        (16, False, CallStatus.FAILED),
        (17, True, CallStatus.COMPLETED),
    ],
)
def test_hangup_cause_decides_the_outcome(cause: int, answered: bool, expected: CallStatus) -> None:
    ending = ending_for_hangup(cause, answered=answered, cancel_requested=False)
    assert ending.status is expected
    assert ending.cause == cause


def test_cancel_before_answer_is_canceled_after_answer_completed() -> None:
    assert ending_for_hangup(16, answered=False, cancel_requested=True).status is CallStatus.CANCELED
    assert ending_for_hangup(16, answered=True, cancel_requested=True).status is CallStatus.COMPLETED


def test_originate_failure_without_hangup() -> None:
    assert ending_for_originate_failure(3, cancel_requested=False).status is CallStatus.NO_ANSWER
    assert ending_for_originate_failure(5, cancel_requested=False).status is CallStatus.BUSY
    failed = ending_for_originate_failure(0, cancel_requested=False)
    assert failed.status is CallStatus.FAILED and "reason 0" in failed.reason


def _attempt() -> AttemptState:
    return AttemptState(uuid4(), uuid4(), "n1")


def test_answered_call_sequence() -> None:
    state = _attempt()
    uid = str(state.attempt_id)
    steps = [
        ChannelCreated(attempt_id=uid, at=NOW, state="Down", channel="PJSIP/demo-00000001"),
        ChannelState(attempt_id=uid, at=NOW, state="Ringing"),
        ChannelState(attempt_id=uid, at=NOW, state="Up"),
        ChannelAnswered(attempt_id=uid, at=NOW),
        ChannelHungUp(attempt_id=uid, at=NOW, cause=16, cause_text="Normal Clearing"),
    ]
    statuses = []
    for event in steps:
        t = state.on_event(event)
        statuses.append(t.status if t else None)
    assert statuses == [None, CallStatus.RINGING, CallStatus.IN_PROGRESS, None, CallStatus.COMPLETED]
    assert state.channel == "PJSIP/demo-00000001"
    final = state.on_event(_hangup(17))
    assert final is None, "a repeated hangup must not change a final attempt"


def test_busy_sequence_and_late_events() -> None:
    state = _attempt()
    t = state.on_event(_hangup(17))
    assert t is not None and t.status is CallStatus.BUSY and t.ending and t.ending.cause == 17
    assert state.on_originate_failed(0, NOW) is None
    assert state.on_event(_state("Up")) is None


def test_originate_success_means_answered() -> None:
    state = _attempt()
    t = state.on_originate_response(True, 4, NOW)
    assert t is not None and t.status is CallStatus.IN_PROGRESS and t.answered
    done = state.on_event(_hangup(16))
    assert done is not None and done.status is CallStatus.COMPLETED


def test_lost_attempt_fails_with_reason() -> None:
    state = _attempt()
    t = state.on_lost("node died", NOW)
    assert t is not None and t.status is CallStatus.FAILED and t.ending and t.ending.reason == "node died"


def test_ring_timeout_without_any_response_is_a_failure() -> None:
    """An unreachable carrier: Asterisk says cause 19 at the ring timeout, channel still Down."""
    silent = _attempt()
    t = silent.on_event(_hangup(19, "Down"))
    assert (
        t is not None and t.status is CallStatus.FAILED and t.ending and "never responded" in t.ending.reason
    )
    rang = _attempt()
    assert rang.on_event(_state("Ringing")) is not None
    t = rang.on_event(_hangup(19))
    assert t is not None and t.status is CallStatus.NO_ANSWER


def test_progress_counts_as_a_response() -> None:
    state = _attempt()
    assert state.on_event(ChannelProgress(attempt_id="a", at=NOW)) is None
    t = state.on_originate_failed(3, NOW)
    assert t is not None and t.status is CallStatus.NO_ANSWER
    silent = _attempt()
    t = silent.on_originate_failed(3, NOW)
    assert t is not None and t.status is CallStatus.FAILED


def test_an_answer_missed_while_nobody_listened_is_recovered() -> None:
    """After a dispatcher restart the first event seen may already be the hangup of an
    answered call: its channel state says it was Up."""
    state = _attempt()
    t = state.on_event(_hangup(16, "Up"))
    assert t is not None and t.status is CallStatus.COMPLETED and t.answered
    other = _attempt()
    t = other.on_event(
        PlaybackDone(attempt_id="a", at=NOW, state="Up", name="SespclPlaybackDone", status="SUCCESS")
    )
    assert t is not None and t.status is CallStatus.IN_PROGRESS and t.answered


def test_retry_policy_by_outcome() -> None:
    from datetime import timedelta

    from orchestrator.domain.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=3, retry_on=frozenset({CallStatus.BUSY}), backoff_s=10, growth=2)
    assert policy.next_attempt_at(CallStatus.BUSY, 1, NOW) == NOW + timedelta(seconds=10)
    assert policy.next_attempt_at(CallStatus.BUSY, 2, NOW) == NOW + timedelta(seconds=20)
    assert policy.next_attempt_at(CallStatus.BUSY, 3, NOW) is None
    assert policy.next_attempt_at(CallStatus.NO_ANSWER, 1, NOW) is None
    assert policy.next_attempt_at(CallStatus.COMPLETED, 1, NOW) is None
    with pytest.raises(ValueError):
        RetryPolicy(retry_on=frozenset({CallStatus.COMPLETED}))


def test_final_transition_carries_the_retry() -> None:
    from orchestrator.domain.retry import RetryPolicy

    state = AttemptState(
        uuid4(),
        uuid4(),
        "n1",
        number=1,
        retry=RetryPolicy(max_attempts=2, retry_on=frozenset({CallStatus.BUSY}), backoff_s=5),
    )
    t = state.on_event(_hangup(17))
    assert t is not None and t.status is CallStatus.BUSY and t.retry_at is not None
    last = AttemptState(
        uuid4(),
        uuid4(),
        "n1",
        number=2,
        retry=RetryPolicy(max_attempts=2, retry_on=frozenset({CallStatus.BUSY}), backoff_s=5),
    )
    t = last.on_event(_hangup(17))
    assert t is not None and t.retry_at is None


def test_a_rejected_call_is_never_retried() -> None:
    """SIP 603 Decline (cause 21): the person turned the call down; dialing again would only
    annoy them, whatever the policy says of failures."""
    from orchestrator.domain.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=3, retry_on=frozenset({CallStatus.FAILED}), backoff_s=5)
    state = AttemptState(uuid4(), uuid4(), "n1", number=1, retry=policy)
    t = state.on_event(_hangup(21))
    assert t is not None and t.status is CallStatus.FAILED and t.retry_at is None
    assert t.ending is not None and "rejected" in t.ending.reason
    other = AttemptState(uuid4(), uuid4(), "n1", number=1, retry=policy)
    t = other.on_event(_hangup(38))  # network out of order: tried again
    assert t is not None and t.status is CallStatus.FAILED and t.retry_at is not None


def test_a_lost_attempt_is_retried_only_once_it_can_no_longer_ring() -> None:
    from datetime import timedelta

    from orchestrator.domain.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=3, retry_on=frozenset({CallStatus.FAILED}), backoff_s=5)
    rings_until = NOW + timedelta(seconds=40)
    t = AttemptState(uuid4(), uuid4(), "n1", retry=policy).on_lost(
        "node lost", NOW, may_ring_until=rings_until
    )
    assert t is not None and t.retry_at == rings_until
    t = AttemptState(uuid4(), uuid4(), "n1", retry=policy).on_lost("node lost", NOW, may_ring_until=NOW)
    assert t is not None and t.retry_at == NOW + timedelta(seconds=5), "the backoff when it is later"


def test_an_answered_attempt_is_never_retried() -> None:
    """Even when it ends failed (its node died mid-message) and the policy retries failures."""
    from orchestrator.domain.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=3, retry_on=frozenset({CallStatus.FAILED}), backoff_s=5)
    answered = AttemptState(uuid4(), uuid4(), "n1", number=1, retry=policy)
    assert answered.on_event(_state("Up")) is not None
    lost = answered.on_lost("node n1 lost", NOW)
    assert lost is not None and lost.status is CallStatus.FAILED and lost.retry_at is None
    unanswered = AttemptState(uuid4(), uuid4(), "n1", number=1, retry=policy)
    lost = unanswered.on_lost("node n1 lost", NOW)
    assert lost is not None and lost.retry_at is not None


@pytest.mark.parametrize(
    ("disposition", "expected", "cause"),
    [
        ("ANSWERED", CallStatus.COMPLETED, 16),
        ("BUSY", CallStatus.BUSY, 17),
        ("NO ANSWER", CallStatus.NO_ANSWER, 19),
        ("FAILED", CallStatus.FAILED, 0),
        ("CONGESTION", CallStatus.FAILED, 0),
    ],
)
def test_a_call_that_ended_unseen_takes_its_outcome_from_the_cdr(
    disposition: str, expected: CallStatus, cause: int
) -> None:
    state = AttemptState(uuid4(), uuid4(), "n1")
    t = state.on_ended_unseen(disposition, "channel gone when node n1 was next seen", NOW)
    assert t is not None and t.status is expected and t.ending is not None
    assert t.ending.cause == cause and "CDR" in t.ending.reason
    assert t.answered is (expected is CallStatus.COMPLETED)


def test_without_a_cdr_an_unseen_end_is_a_failure_unless_answer_was_seen() -> None:
    unseen = AttemptState(uuid4(), uuid4(), "n1")
    t = unseen.on_ended_unseen(None, "gone", NOW)
    assert t is not None and t.status is CallStatus.FAILED
    answered = AttemptState(uuid4(), uuid4(), "n1", answered=True, status=CallStatus.IN_PROGRESS)
    t = answered.on_ended_unseen("SOMETHING-NEW", "gone", NOW)
    assert t is not None and t.status is CallStatus.COMPLETED


def test_a_cancel_requested_call_that_ended_unanswered_is_canceled() -> None:
    state = AttemptState(uuid4(), uuid4(), "n1", cancel_requested=True)
    t = state.on_ended_unseen("NO ANSWER", "gone", NOW)
    assert t is not None and t.status is CallStatus.CANCELED
