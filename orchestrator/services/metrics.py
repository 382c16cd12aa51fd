"""The farm's figures behind /api/metrics and /metrics: calls by status, live calls per node,
paces, queue depths and the disk rendered audio uses, read at request time so every API
replica reports the same numbers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from orchestrator.domain.audio_retention import AudioUsage


class MetricsRepository(Protocol):
    async def counts_by_status(self) -> dict[str, int]: ...

    async def dialable_now(self) -> int: ...

    async def live_calls_per_node(self) -> dict[str, int]: ...

    async def dial_pace(self) -> float: ...

    async def node_paces(self) -> dict[str, float]: ...

    async def audio_usage(self) -> AudioUsage: ...


class QueueDepths(Protocol):
    def depths(self) -> dict[str, int]:
        """Jobs waiting per queue (a blocking call: run in a thread)."""
        ...


@dataclass(frozen=True)
class FarmFigures:
    calls_by_status: dict[str, int]
    live_calls_per_node: dict[str, int]
    queue_depths: dict[str, int]
    dial_pace_cps: float
    """Attempts started per second over the last minute."""
    audio: AudioUsage


@dataclass(frozen=True)
class FarmOverview(FarmFigures):
    """/api/metrics: the figures, and the calls that could be dialed now."""

    dialable: int

    @property
    def eta_s(self) -> int | None:
        """How long the dialable calls take at the pace of the last minute (None: no pace)."""
        return round(self.dialable / self.dial_pace_cps) if self.dial_pace_cps else None


@dataclass(frozen=True)
class FarmGauges(FarmFigures):
    """/metrics: the figures, and each node's own pace."""

    node_paces: dict[str, float]


class FarmMetrics:
    def __init__(self, store: MetricsRepository, queues: QueueDepths) -> None:
        self._store = store
        self._queues = queues

    async def overview(self) -> FarmOverview:
        by_status, dialable, per_node, depths, pace, audio = await asyncio.gather(
            self._store.counts_by_status(),
            self._store.dialable_now(),
            self._store.live_calls_per_node(),
            asyncio.to_thread(self._queues.depths),
            self._store.dial_pace(),
            self._store.audio_usage(),
        )
        return FarmOverview(
            calls_by_status=by_status,
            live_calls_per_node=per_node,
            queue_depths=depths,
            dial_pace_cps=pace,
            audio=audio,
            dialable=dialable,
        )

    async def gauges(self) -> FarmGauges:
        # One query after another: a scrape holds one pooled connection at a time.
        by_status = await self._store.counts_by_status()
        per_node = await self._store.live_calls_per_node()
        pace = await self._store.dial_pace()
        node_paces = await self._store.node_paces()
        audio = await self._store.audio_usage()
        depths = await asyncio.to_thread(self._queues.depths)
        return FarmGauges(
            calls_by_status=by_status,
            live_calls_per_node=per_node,
            queue_depths=depths,
            dial_pace_cps=pace,
            audio=audio,
            node_paces=node_paces,
        )
