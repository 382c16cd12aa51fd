"""`every`: a step run on an interval, counted from the step's end or (from_start) its start."""

from __future__ import annotations

import asyncio
import time

from orchestrator.services.periodic import every


async def _starts(step_s: float, interval_s: float, *, from_start: bool, runs: int) -> list[float]:
    stopping = asyncio.Event()
    starts: list[float] = []

    async def step() -> None:
        starts.append(time.monotonic())
        if len(starts) == runs:
            stopping.set()
        await asyncio.sleep(step_s)

    await every(interval_s, step, stopping, failure_event="test.step_failed", from_start=from_start)
    return [b - a for a, b in zip(starts, starts[1:])]


async def test_from_start_keeps_the_period_whatever_the_step_spends() -> None:
    gaps = await _starts(0.1, 0.2, from_start=True, runs=4)
    assert all(0.195 <= gap < 0.27 for gap in gaps), gaps
    # Counted from the end, the same step makes the period step + interval.
    gaps = await _starts(0.1, 0.2, from_start=False, runs=3)
    assert all(gap >= 0.295 for gap in gaps), gaps


async def test_a_step_slower_than_the_interval_still_gets_a_pause() -> None:
    gaps = await _starts(0.15, 0.1, from_start=True, runs=3)
    assert all(gap >= 0.15 + 0.1 / 10 - 0.002 for gap in gaps), gaps
