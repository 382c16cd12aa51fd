"""Retries by outcome: which endings try again, and when. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.domain.call import CallStatus

RETRYABLE = frozenset({CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call may take, after which endings, and how far apart."""

    max_attempts: int = 1
    retry_on: frozenset[CallStatus] = frozenset()
    backoff_s: float = 60.0
    growth: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 10:
            raise ValueError("max_attempts must be 1 to 10")
        if not self.retry_on <= RETRYABLE:
            raise ValueError("retry_on may name busy, no-answer and failed only")
        if self.backoff_s < 0 or self.growth < 1:
            raise ValueError("the backoff must be positive and may only grow")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(row["max_attempts"]),
            retry_on=frozenset(CallStatus(s) for s in row["retry_on"] or ()),
            backoff_s=float(row["retry_backoff_s"]),
        )

    def next_attempt_at(self, ending: CallStatus, attempt_number: int, now: datetime) -> datetime | None:
        """When attempt `attempt_number` ended `ending`: the time of the next attempt, or None
        when this ending is final. Completed and canceled calls never retry."""
        if ending not in self.retry_on or attempt_number >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.backoff_s * self.growth ** (attempt_number - 1))
