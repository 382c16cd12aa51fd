"""How far ahead the render planner keeps calls rendered. Pure: no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Lookahead:
    horizon_s: float = 120.0
    """Calls due to be dialed within this long, at the trunk's pace, are kept rendered."""
    min_calls: int = 200
    """Planned ahead of each lane however slow it dials (a campaign just uploaded or resumed
    has no pace yet)."""
    max_calls: int = 100_000
    step_calls: int = 2_000
    """Calls read per lane per pass: a long backlog is planned over several passes, first
    calls first, instead of in one long statement."""

    def calls_ahead(self, pace_per_s: float) -> int:
        """How many of a lane's next calls to keep rendered at `pace_per_s` dials a second."""
        wanted = math.ceil(max(0.0, pace_per_s) * self.horizon_s)
        return min(self.max_calls, max(self.min_calls, wanted))

    def to_read(self, planned_ahead: int, pace_per_s: float) -> int:
        """How many more calls of the lane to read this pass."""
        return max(0, min(self.step_calls, self.calls_ahead(pace_per_s) - planned_ahead))


def first_seen(hashes: list[str]) -> list[str]:
    """Each hash once, where it first comes (dial order)."""
    return list(dict.fromkeys(hashes))


def batches(hashes: list[str], size: int) -> list[list[str]]:
    return [hashes[i : i + size] for i in range(0, len(hashes), size)]
