"""The render planner over a store that keeps lanes of queued calls in memory: first calls
first, only as far ahead as the pace asks, each audio enqueued once, nothing lost when Redis
refuses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orchestrator.domain.errors import QueueUnavailable
from orchestrator.domain.render_planning import Lookahead, first_seen
from orchestrator.persistence.render_plan import Ahead, Lane, Mark
from orchestrator.services.render_planner import RenderPlanner

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@dataclass
class QueuedCall:
    id: uuid.UUID
    not_before: datetime
    audio: list[str]


@dataclass
class MemoryPlan:
    calls: dict[Lane, list[QueuedCall]] = field(default_factory=dict)
    planned: set[str] = field(default_factory=set)
    ready: set[str] = field(default_factory=set)
    per_s: dict[str, float] = field(default_factory=dict)
    reads: int = 0

    async def lanes(self) -> list[Lane]:
        return [lane for lane, calls in self.calls.items() if calls]

    async def pace(self, window_s: float) -> dict[str, float]:
        return dict(self.per_s)

    async def planned_ahead(self, lane: Lane, mark: Mark, horizon: int) -> int:
        return min(horizon, sum(1 for c in self.calls[lane] if (c.not_before, c.id) <= mark))

    async def next_calls(self, lane: Lane, mark: Mark | None, limit: int, within_s: float) -> Ahead:
        self.reads += 1
        after = [c for c in self.calls[lane] if mark is None or (c.not_before, c.id) > mark][:limit]
        return Ahead(
            [h for c in after for h in c.audio], (after[-1].not_before, after[-1].id) if after else mark
        )

    async def mark_planned(self, hashes: list[str]) -> list[str]:
        marked = [h for h in hashes if h not in self.planned and h not in self.ready]
        self.planned.update(marked)
        return marked

    async def unplan(self, hashes: list[str]) -> None:
        self.planned.difference_update(hashes)


@dataclass
class Queue:
    enqueued: list[str] = field(default_factory=list)
    refuse: bool = False

    def enqueue_render_batch(self, audio_hashes: list[str]) -> str:
        if self.refuse:
            raise QueueUnavailable("Redis is down")
        assert 1 <= len(audio_hashes) <= 1000
        self.enqueued.extend(audio_hashes)
        return f"batch-{len(self.enqueued)}"


def _lane(calls: int, names: int) -> tuple[Lane, list[QueuedCall]]:
    """A personal reminder campaign: a greeting, the callee's name (`names` distinct), a fixed
    middle and the four digits of a code, each call a second later than the one before."""
    lane = Lane("carrier-a", uuid.uuid4())
    queued = [
        QueuedCall(
            uuid.uuid4(),
            T0 + timedelta(seconds=n),
            ["hello", f"name-{n % names}", "your-code-is", *(f"digit-{d}" for d in f"{n * 37 % 10_000:04d}")],
        )
        for n in range(calls)
    ]
    return lane, queued


async def test_the_first_calls_audio_is_enqueued_first_and_each_once() -> None:
    lane, queued = _lane(calls=1_000, names=700)
    store, queue = MemoryPlan({lane: queued}), Queue()
    planner = RenderPlanner(store, queue, lookahead=Lookahead(min_calls=300, step_calls=100))
    await planner.plan()
    assert queue.enqueued[:3] == ["hello", "name-0", "your-code-is"]
    assert len(queue.enqueued) == len(set(queue.enqueued))
    # Only the first 100 calls are read in one pass, and all they play is enqueued.
    assert set(queue.enqueued) == set(first_seen([h for c in queued[:100] for h in c.audio]))


async def test_it_plans_only_as_far_ahead_as_the_pace_asks() -> None:
    lane, queued = _lane(calls=5_000, names=5_000)
    store, queue = MemoryPlan({lane: queued}), Queue()
    planner = RenderPlanner(store, queue, lookahead=Lookahead(horizon_s=60, min_calls=200, step_calls=150))
    for _ in range(10):
        await planner.plan()
    planned_names = {h for h in queue.enqueued if h.startswith("name-")}
    assert planned_names == {f"name-{n}" for n in range(200)}  # no pace yet: the minimum
    store.per_s["carrier-a"] = 20.0  # 20 calls a second for 60 s: 1,200 calls ahead
    for _ in range(10):
        await planner.plan()
    assert {h for h in queue.enqueued if h.startswith("name-")} == {f"name-{n}" for n in range(1_200)}


async def test_a_paused_campaign_keeps_only_its_first_calls_rendered() -> None:
    lane, queued = _lane(calls=3_000, names=3_000)
    paused = Lane(lane.trunk, lane.campaign_id, paused=True)
    store, queue = MemoryPlan({paused: queued}, per_s={"carrier-a": 50.0}), Queue()
    planner = RenderPlanner(store, queue, lookahead=Lookahead(min_calls=100, step_calls=1_000))
    for _ in range(3):
        await planner.plan()
    assert {h for h in queue.enqueued if h.startswith("name-")} == {f"name-{n}" for n in range(100)}
    store.calls = {lane: queued}  # resumed: the trunk's pace counts again
    for _ in range(3):
        await planner.plan()
    assert "name-2999" in queue.enqueued


async def test_a_capped_campaign_is_planned_for_its_cap_before_it_dials() -> None:
    lane, queued = _lane(calls=3_000, names=3_000)
    capped = Lane(lane.trunk, lane.campaign_id, cap_cps=10.0)
    store, queue = MemoryPlan({capped: queued}), Queue()
    planner = RenderPlanner(store, queue, lookahead=Lookahead(horizon_s=60, min_calls=100, step_calls=5_000))
    await planner.plan()
    assert {h for h in queue.enqueued if h.startswith("name-")} == {f"name-{n}" for n in range(600)}


async def test_calls_dialed_away_let_it_plan_further() -> None:
    lane, queued = _lane(calls=2_000, names=2_000)
    store, queue = MemoryPlan({lane: queued}), Queue()
    planner = RenderPlanner(store, queue, lookahead=Lookahead(min_calls=100, step_calls=500))
    await planner.plan()
    assert "name-99" in queue.enqueued and "name-100" not in queue.enqueued
    del queued[:60]  # dialed
    await planner.plan()
    assert "name-159" in queue.enqueued and "name-160" not in queue.enqueued


async def test_renders_redis_refused_are_planned_again() -> None:
    lane, queued = _lane(calls=50, names=50)
    store, queue = MemoryPlan({lane: queued}), Queue(refuse=True)
    planner = RenderPlanner(store, queue, lookahead=Lookahead(min_calls=50))
    assert await planner.plan() == 0
    assert store.planned == set()
    queue.refuse = False
    await planner.plan()
    assert set(queue.enqueued) == {h for c in queued for h in c.audio}


def test_the_lookahead_is_bounded_both_ways() -> None:
    look = Lookahead(horizon_s=120, min_calls=200, max_calls=10_000, step_calls=2_000)
    assert look.calls_ahead(0.0) == 200
    assert look.calls_ahead(50.0) == 6_000
    assert look.calls_ahead(1_000.0) == 10_000
    assert look.to_read(planned_ahead=5_500, pace_per_s=50.0) == 500
    assert look.to_read(planned_ahead=0, pace_per_s=50.0) == 2_000
    assert look.to_read(planned_ahead=7_000, pace_per_s=50.0) == 0
