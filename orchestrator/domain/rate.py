"""Requests per second per key: the generic cell rate algorithm (GCRA). Pure: no I/O.

One number per key (its theoretical arrival time, TAT) is the whole state, so the check is one
read and one write, done atomically in Redis by a Lua script that follows `Gcra.decide` step
for step (orchestrator/rate_limit.py). Times are whole microseconds: exact in Lua's doubles
too, where sums of float fractions of a second drift (fifty requests at 50/s must all pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MICROS = 1_000_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tat_us: int
    """The key's new theoretical arrival time (unchanged when refused)."""
    retry_after_s: int
    """Whole seconds until a request would be allowed (the Retry-After header); 0 if allowed."""


@dataclass(frozen=True)
class Gcra:
    rate_per_s: float

    @property
    def interval_us(self) -> int:
        return max(1, round(MICROS / self.rate_per_s))

    @property
    def tolerance_us(self) -> int:
        """A burst of one second's worth of requests (at least one) is let through at once."""
        return round(self.interval_us * (max(1.0, self.rate_per_s) - 1.0))

    def decide(self, tat_us: int | None, now_us: int) -> Decision:
        start = now_us if tat_us is None or tat_us < now_us else tat_us
        allow_at = start - self.tolerance_us
        if now_us < allow_at:
            return Decision(False, start, retry_after_s(allow_at - now_us))
        return Decision(True, start + self.interval_us, 0)


def retry_after_s(wait_us: int) -> int:
    return max(1, math.ceil(wait_us / MICROS))
