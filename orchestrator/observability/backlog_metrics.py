"""Where the farm's work waits, exported by upkeep: read every few seconds in its loop (a count
over a million queued calls must not run inside a scrape), served from the last reading."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Protocol

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.domain.errors import SespclError
from orchestrator.persistence.backlog import Backlog
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)


class BacklogSource(Protocol):
    async def read(self) -> Backlog: ...


class BacklogGauges(Collector):
    def __init__(self, store: BacklogSource, render_jobs: Callable[[], int], every_s: float) -> None:
        """`render_jobs`: render jobs waiting in the queue (a blocking Redis call)."""
        self._store = store
        self._render_jobs = render_jobs
        self._every_s = every_s
        self._backlog: Backlog | None = None
        self._render_depth: int | None = None
        self._stopping = asyncio.Event()

    async def refresh(self) -> None:
        try:
            self._backlog = await self._store.read()
        except SespclError as exc:
            self._backlog = None  # no figure rather than a stale one
            log.warning("metrics.backlog_unread", error=exc.message)
        try:
            self._render_depth = await asyncio.to_thread(self._render_jobs)
        except Exception as exc:  # noqa: BLE001 - Redis down: the gauge is absent until it is back
            self._render_depth = None
            log.warning("metrics.render_queue_unread", error=str(exc))

    async def run(self) -> None:
        await every(self._every_s, self.refresh, self._stopping, failure_event="metrics.backlog_failed")

    def stop(self) -> None:
        self._stopping.set()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog, render_depth = self._backlog, self._render_depth  # one reading, whatever the loop does
        if render_depth is not None:
            yield GaugeMetricFamily(
                "sespcl_render_queue_depth", "Render jobs waiting for a worker", value=render_depth
            )
        if backlog is None:
            return
        queued = GaugeMetricFamily(
            "sespcl_queue_depth",
            "Queued calls by what they wait for: dialable (nothing), waiting_render, scheduled "
            "(a later time), held (a paused campaign)",
            labels=["state"],
        )
        for state, count in backlog.queued_by_state.items():
            queued.add_metric([state], count)
        yield queued
        yield GaugeMetricFamily(
            "sespcl_dispatchers_live", "Dispatchers with a fresh heartbeat", value=backlog.dispatchers_live
        )
        yield GaugeMetricFamily(
            "sespcl_webhook_lag_seconds",
            "Seconds since the oldest undelivered status callback fell due",
            value=backlog.webhook_lag_s,
        )
