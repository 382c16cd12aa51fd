"""Objects the unit tests build often."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.call import CallStatus
from orchestrator.domain.dialing import OriginateRequest
from orchestrator.domain.records import AdoptedAttempt, Claim, NodeRow
from orchestrator.domain.retry import RetryPolicy


def originate_request(**overrides: Any) -> OriginateRequest:
    fields: dict[str, Any] = dict(
        attempt_id="a1b2",
        to="+14155550123",
        trunk="demo",
        caller_id="+14155550100",
        audio_path="/var/lib/sespcl/audio/abc",
        call_id="c1",
        timeout_ms=30000,
        max_call_s=600,
    )
    fields.update(overrides)
    return OriginateRequest(**fields)


def node_row(name: str, *, max_channels: int = 1000, driver: str = "ami") -> NodeRow:
    return NodeRow(name, "127.0.0.1", 5038, "u", "s", max_channels, drained=False, driver=driver)


def make_claim(node: str) -> Claim:
    return Claim(
        call_id=uuid.uuid4(),
        attempt_id=uuid.uuid4(),
        attempt_number=1,
        node=node,
        to="+14155550100",
        from_=None,
        trunk="demo",
        audio_path="/var/lib/sespcl/audio/x",
        ring_timeout_s=30,
        claimed_at=datetime.now(UTC),
    )


def adopted_attempt(node: str, *, sent: bool = True, **overrides: Any) -> AdoptedAttempt:
    """A live attempt of a stopped dispatcher, as the store hands it over: ringing if `sent`,
    else never sent (initiated, no channel)."""
    fields: dict[str, Any] = dict(
        attempt_id=uuid.uuid4(),
        call_id=uuid.uuid4(),
        node=node,
        status=CallStatus.RINGING if sent else CallStatus.INITIATED,
        channel="PJSIP/demo-00000001" if sent else None,
        started_at=datetime.now(UTC),
        number=1,
        originate_sent=sent,
        answered=False,
        cancel_requested=False,
        ring_timeout_s=30,
        trunk="carrier-a",
        retry=RetryPolicy(max_attempts=2, retry_on=frozenset({CallStatus.BUSY})),
    )
    fields.update(overrides)
    return AdoptedAttempt(**fields)


def state_of(claim: Claim, **fields: Any) -> AttemptState:
    """The state of `claim`'s attempt, as the dispatcher follows it."""
    return AttemptState(claim.attempt_id, claim.call_id, claim.node, **fields)
