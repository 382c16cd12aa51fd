"""GET /metrics: the Prometheus text format, for scraping (a key with metrics:read, as /api/metrics).

Request counts and latencies are this API process's own; the farm's figures are
services/metrics.py's, read at scrape time, so every API replica reports the same numbers.
"""

from __future__ import annotations

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
from orchestrator.services.metrics import FarmGauges

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
    farm = await deps.metrics.gauges()
    body = generate_latest(request.app[REQUESTS_KEY]) + generate_latest(
        _farm_registry(farm, deps.health.runs)
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _farm_registry(farm: FarmGauges, health_runs: int) -> CollectorRegistry:
    """The farm's figures as gauges, in a registry made for this scrape."""
    registry = CollectorRegistry()
    calls = Gauge("sespcl_calls", "Calls by status", ["status"], registry=registry)
    for status, count in farm.calls_by_status.items():
        calls.labels(status).set(count)
    live = Gauge("sespcl_live_calls", "Live calls per Asterisk node", ["node"], registry=registry)
    for node, count in farm.live_calls_per_node.items():
        live.labels(node).set(count)
    Gauge("sespcl_dial_pace_cps", "Attempts started per second over the last minute", registry=registry).set(
        farm.dial_pace_cps
    )
    node_pace = Gauge(
        "sespcl_node_pace_cps",
        "New calls per second each node may take now (AIMD)",
        ["node"],
        registry=registry,
    )
    for node, cps in farm.node_paces.items():
        node_pace.labels(node).set(cps)
    depth = Gauge("sespcl_queue_depth", "Jobs waiting in each RQ queue", ["queue"], registry=registry)
    for queue, count in farm.queue_depths.items():
        depth.labels(queue).set(count)
    Gauge("sespcl_audio_prompts", "Rendered audio files on disk (ready prompts)", registry=registry).set(
        farm.audio.prompts
    )
    Gauge("sespcl_audio_bytes", "Disk used by rendered audio, in bytes", registry=registry).set(
        farm.audio.bytes
    )
    Counter(
        "sespcl_health_checks",
        "Times this API process ran /health's checks (at most once a second)",
        registry=registry,
    ).inc(health_runs)
    return registry
