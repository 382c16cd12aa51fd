"""/api/metrics and /metrics present the farm's figures (services/metrics.py) as they always have."""

from __future__ import annotations

from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.domain.audio_retention import AudioUsage
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.services.keys import Authenticator
from orchestrator.services.metrics import FarmMetrics
from tests.unit.api_fakes import Stub, api_deps

KEY = "m" * 32


class Farm:
    def __init__(self, pace: float) -> None:
        self.pace = pace

    async def counts_by_status(self) -> dict[str, int]:
        return {"queued": 120, "completed": 30}

    async def dialable_now(self) -> int:
        return 100

    async def live_calls_per_node(self) -> dict[str, int]:
        return {"n1": 4, "n2": 0}

    async def dial_pace(self) -> float:
        return self.pace

    async def node_paces(self) -> dict[str, float]:
        return {"n1": 25.0}

    async def audio_usage(self) -> AudioUsage:
        return AudioUsage(prompts=3, bytes=48_000)


class Queues:
    def depths(self) -> dict[str, int]:
        return {"sespcl-render": 2, "sespcl-events": 0}


def _client(pace: float) -> TestClient[web.Request, web.Application]:
    keys = Authenticator(
        Stub(AssertionError),
        bootstrap_key=KEY,
        bootstrap=Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None),
        cache_s=2.0,
    )
    health = SimpleNamespace(runs=0)  # /metrics counts the health checks' runs
    deps = api_deps(AssertionError, keys=keys, metrics=FarmMetrics(Farm(pace), Queues()), health=health)
    return TestClient(TestServer(create_app(deps)))


async def test_api_metrics_body() -> None:
    async with _client(pace=3.0 / 7) as client:
        response = await client.get("/api/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert response.status == 200
        assert await response.json() == {
            "calls_by_status": {"queued": 120, "completed": 30},
            "queue_depths": {"dialable": 100, "sespcl-render": 2, "sespcl-events": 0},
            "live_calls_per_node": {"n1": 4, "n2": 0},
            "dial_pace_cps": 0.43,
            "eta_s": 233,
            "audio": {"prompts": 3, "bytes": 48000},
        }
    async with _client(pace=0.0) as client:
        idle = await client.get("/api/metrics", headers={"Authorization": f"Bearer {KEY}"})
        body = await idle.json()
        assert (body["dial_pace_cps"], body["eta_s"]) == (0.0, None)


async def test_prometheus_names() -> None:
    async with _client(pace=2.5) as client:
        await client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert response.status == 200 and response.content_type == "text/plain"
        lines = set((await response.text()).splitlines())
    for line in (
        'sespcl_calls{status="queued"} 120.0',
        'sespcl_calls{status="completed"} 30.0',
        'sespcl_live_calls{node="n1"} 4.0',
        'sespcl_live_calls{node="n2"} 0.0',
        "sespcl_dial_pace_cps 2.5",
        'sespcl_node_pace_cps{node="n1"} 25.0',
        'sespcl_queue_depth{queue="sespcl-render"} 2.0',
        'sespcl_queue_depth{queue="sespcl-events"} 0.0',
        "sespcl_health_checks_total 0.0",
        "sespcl_audio_prompts 3.0",
        "sespcl_audio_bytes 48000.0",
    ):
        assert line in lines, line
    # This process's own requests come first (the earlier scrape is counted).
    assert 'sespcl_http_requests_total{method="GET",route="/metrics",status="200"} 1.0' in lines
