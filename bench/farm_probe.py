"""`python -m bench.farm_probe`: `sespcl dispatcher` with two figures of its own written to its log
(stderr, JSON lines), for `make bench-farm BENCH_FARM_ARGS=--probe`:

- `probe.claims`: each poll of the claim loop: when it started, how long the step took, how long
  its claim transaction took, how many calls it claimed, and the room the nodes' pacers and free
  channels gave it;
- `probe.lag`: the event loop's lag (a 10 ms timer's lateness) per 500 ticks: p50, p90, p99, max.
  Every latency the node pacers see includes it.

The dispatcher itself is unchanged: its claim step and its run are wrapped, nothing else."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.domain.planning import total_room
from orchestrator.domain.records import Claim
from orchestrator.services.dispatch import dispatcher, sending

TICK_S = 0.01
TICKS = 500
POLLS = 25


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), file=sys.stderr, flush=True)


async def _lag() -> None:
    lags: list[float] = []
    while True:
        started = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append(time.perf_counter() - started - TICK_S)
        if len(lags) == TICKS:
            ordered = sorted(lags)
            lags.clear()
            quantiles = {
                name: ordered[int(TICKS * at)] for name, at in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
            }
            _emit("probe.lag", **quantiles, max=ordered[-1])


def _timed_run(run: Callable[[dispatcher.Dispatcher], Awaitable[None]]) -> Any:
    async def timed(self: dispatcher.Dispatcher) -> None:
        ticker = asyncio.ensure_future(_lag())
        try:
            await run(self)
        finally:
            ticker.cancel()

    return timed


def _timed_claims(step: Callable[[sending.Sender], Awaitable[None]]) -> Any:
    polls: list[list[float]] = []

    async def timed(self: sending.Sender) -> None:
        started = time.perf_counter()
        room = total_room(self._nodes.loads(self._live.per_node(), self._clock.monotonic()))
        store_claim, claimed = self._store.claim, [0.0, 0.0]

        async def claim(plan: list[str]) -> list[Claim]:
            began = time.perf_counter()
            got = await store_claim(plan)
            claimed[:] = [time.perf_counter() - began, float(len(got))]
            return got

        self._store.claim = claim  # type: ignore[method-assign, assignment]
        try:
            await step(self)
        finally:
            self._store.claim = store_claim  # type: ignore[method-assign]
        polls.append([started, time.perf_counter() - started, *claimed, float(room)])
        if len(polls) == POLLS:
            _emit("probe.claims", rows=polls[:])
            polls.clear()

    return timed


def summary(log: Path) -> str:
    """The middle half of a run's polls and lag samples, in one line."""
    polls: list[list[float]] = []
    lags: list[dict[str, float]] = []
    for line in log.read_text().splitlines():
        if '"probe.' not in line:
            continue
        record = json.loads(line)
        if record["event"] == "probe.claims":
            polls.extend(record["rows"])
        else:
            lags.append(record)
    polls = polls[len(polls) // 4 : 3 * len(polls) // 4]
    if len(polls) < 3:
        return f"{log.name}: too few polls"
    starts = [p[0] for p in polls]
    cycles = sorted(b - a for a, b in zip(starts, starts[1:]))
    claims = sorted(p[2] for p in polls)
    busy = [lag for lag in lags if lag["p90"] > 0.002] or lags
    return (
        f"{log.stem}: poll every {_q(cycles, 0.5):.3f} s (p90 {_q(cycles, 0.9):.3f}), claim "
        f"{_q(claims, 0.5) * 1e3:.0f} ms (p90 {_q(claims, 0.9) * 1e3:.0f}), "
        f"{statistics.mean(p[3] for p in polls):.0f} claimed of "
        f"{statistics.mean(p[4] for p in polls):.0f} room; "
        f"loop lag p99 {statistics.median(lag['p99'] for lag in busy) * 1e3:.0f} ms, "
        f"max {max(lag['max'] for lag in busy) * 1e3:.0f} ms"
    )


def _q(ordered: list[float], at: float) -> float:
    return ordered[min(len(ordered) - 1, int(at * len(ordered)))]


def main() -> None:
    sending.Sender.claim_and_dial = _timed_claims(sending.Sender.claim_and_dial)  # type: ignore[method-assign]
    dispatcher.Dispatcher.run = _timed_run(dispatcher.Dispatcher.run)  # type: ignore[method-assign]
    from orchestrator.cli import main as sespcl

    sys.argv = ["sespcl", "dispatcher"]
    sespcl()


if __name__ == "__main__":
    main()
