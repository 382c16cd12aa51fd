"""A process's metrics endpoint: prometheus-client's HTTP server on a thread of its own, so a
scrape never waits on the process's event loop or its RQ job."""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from orchestrator.domain.errors import SespclError

log = structlog.get_logger(__name__)

# Buckets for call timings in seconds: from a fast originate (tens of ms) to a long message.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DURATION_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def process_registry() -> CollectorRegistry:
    """A registry of this process's own, with its CPU, memory and file descriptors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


def serve_metrics(registry: CollectorRegistry, host: str, port: int | None, process: str) -> None:
    """GET /metrics on host:port; port None exports nothing (a tool, a test)."""
    if port is None:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise SespclError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    log.info("metrics.serving", process=process, host=host, port=port)
