"""GET /metrics: the Prometheus text format, for scraping (a key with metrics:read, as /api/metrics).

Request counts and latencies are this API process's own; the call figures are read from
PostgreSQL at scrape time, so every API replica reports the same farm-wide numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from orchestrator.api.deps import DEPS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTS_KEY = web.AppKey("prometheus_registry", CollectorRegistry)


class ApiInstruments:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "sespcl_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "sespcl_http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry
        )


INSTRUMENTS_KEY = web.AppKey("prometheus_instruments", ApiInstruments)


def install(app: web.Application) -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    app[REQUESTS_KEY] = registry
    app[INSTRUMENTS_KEY] = ApiInstruments(registry)
    app.middlewares.insert(0, _measure)  # outermost: it sees the final status of every request
    app.router.add_get("/metrics", metrics)


@web.middleware
async def _measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    instruments = request.app[INSTRUMENTS_KEY]
    instruments.requests.labels(request.method, route, str(response.status)).inc()
    instruments.latency.labels(request.method, route).observe(time.perf_counter() - started)
    return response


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    by_status = await deps.store.counts_by_status()
    per_node = await deps.store.live_calls_per_node()
    pace = await deps.store.dial_pace()
    farm = CollectorRegistry()
    calls = Gauge("sespcl_calls", "Calls by status", ["status"], registry=farm)
    for status, count in by_status.items():
        calls.labels(status).set(count)
    live = Gauge("sespcl_live_calls", "Live calls per Asterisk node", ["node"], registry=farm)
    for node, count in per_node.items():
        live.labels(node).set(count)
    Gauge("sespcl_dial_pace_cps", "Attempts started per second over the last minute", registry=farm).set(pace)
    node_pace = Gauge(
        "sespcl_node_pace_cps", "New calls per second each node may take now (AIMD)", ["node"], registry=farm
    )
    for node, cps in (await deps.store.node_paces()).items():
        node_pace.labels(node).set(cps)
    depth = Gauge("sespcl_queue_depth", "Jobs waiting in each RQ queue", ["queue"], registry=farm)
    for queue, count in (await asyncio.to_thread(deps.queues.depths)).items():
        depth.labels(queue).set(count)
    health_runs = Counter(
        "sespcl_health_checks",
        "Times this API process ran /health's checks (at most once a second)",
        registry=farm,
    )
    health_runs.inc(deps.health.runs)
    body = generate_latest(request.app[REQUESTS_KEY]) + generate_latest(farm)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
