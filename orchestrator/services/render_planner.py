"""The render planner: keeps the calls about to be dialed rendered, first calls first, at the
pace the trunks dial, so an upload enqueues nothing per row and a campaign's first calls are
ready within seconds whatever its size. Runs in the upkeep process; two planners at once do
not enqueue a render twice (each asset is marked planned by one UPDATE). A job lost after that
(a flushed Redis, a killed worker) is enqueued again by the dispatcher's sweep for lost renders."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from orchestrator.domain.errors import QueueUnavailable
from orchestrator.domain.render_planning import Lookahead, batches, first_seen
from orchestrator.persistence.render_plan import Ahead, Lane, Mark
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)

PACE_WINDOW_S = 10.0
BATCH_SIZE = 50
"""Renders per job (one engine, one SELECT and one UPDATE for all): small enough that the first
calls' audio is done within a fraction of a second."""


class PlanStore(Protocol):
    async def lanes(self) -> list[Lane]: ...

    async def pace(self, window_s: float) -> dict[str, float]: ...

    async def planned_ahead(self, lane: Lane, mark: Mark, horizon: int) -> int: ...

    async def next_calls(self, lane: Lane, mark: Mark | None, limit: int, within_s: float) -> Ahead: ...

    async def mark_planned(self, hashes: list[str]) -> list[str]: ...

    async def unplan(self, hashes: list[str]) -> None: ...


class RenderSink(Protocol):
    def enqueue_render_batch(self, audio_hashes: list[str]) -> str: ...


def lane_pace(lane: Lane, measured: dict[str, float]) -> float:
    """Calls a second the lane is planned for: what its trunk dials at now, or its cap if
    higher (a campaign just resumed reaches its cap within seconds; the measure lags)."""
    return max(measured.get(lane.trunk, 0.0), lane.cap_cps or 0.0)


class RenderPlanner:
    def __init__(
        self, store: PlanStore, sink: RenderSink, *, every_s: float = 1.0, lookahead: Lookahead | None = None
    ) -> None:
        self._store = store
        self._sink = sink
        self._every_s = every_s
        self._lookahead = lookahead or Lookahead()
        self._marks: dict[Lane, Mark] = {}
        """Per lane, the last call whose audio is planned: the next pass reads past it."""
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if self._every_s > 0:
            await every(self._every_s, self.plan, self._stopping, failure_event="renders.plan_failed")

    async def plan(self) -> int:
        """One pass over every lane; returns how many renders it enqueued."""
        enqueued = 0
        lanes = await self._store.lanes()
        self._marks = {lane: mark for lane, mark in self._marks.items() if lane in set(lanes)}
        pace = await self._store.pace(PACE_WINDOW_S)
        for lane in lanes:
            enqueued += await self._plan_lane(lane, 0.0 if lane.paused else lane_pace(lane, pace))
        return enqueued

    async def _plan_lane(self, lane: Lane, pace_per_s: float) -> int:
        look = self._lookahead
        mark = self._marks.get(lane)
        horizon = look.calls_ahead(pace_per_s)
        planned = 0 if mark is None else await self._store.planned_ahead(lane, mark, horizon)
        wanted = look.to_read(planned, pace_per_s)
        if wanted == 0:
            return 0
        ahead = await self._store.next_calls(lane, mark, wanted, look.horizon_s)
        renders = await self._store.mark_planned(first_seen(ahead.audio))
        enqueued = await self._enqueue(renders)
        if enqueued < len(renders):
            return enqueued  # the mark stays: the same calls are read again next pass
        if ahead.mark is not None:
            self._marks[lane] = ahead.mark
        if enqueued:
            log.info(
                "renders.planned",
                campaign_id=str(lane.campaign_id),
                trunk=lane.trunk,
                renders=enqueued,
                calls_ahead=planned + wanted,
                pace_cps=round(pace_per_s, 1),
            )
        return enqueued

    async def _enqueue(self, renders: list[str]) -> int:
        """Enqueues in dial order; on a Redis failure what was not enqueued is unplanned."""
        done = 0
        for batch in batches(renders, BATCH_SIZE):
            try:
                await asyncio.to_thread(self._sink.enqueue_render_batch, batch)
            except QueueUnavailable as exc:
                log.warning("renders.enqueue_failed", error=str(exc), pending=len(renders) - done)
                await self._store.unplan(renders[done:])
                return done
            done += len(batch)
        return done
