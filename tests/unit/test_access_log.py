"""The API's access log: one line per request, with the route template, status, time and the
key's name; never the key, the body, the query string or a caller's path text."""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from orchestrator.api.app import create_app
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.services.keys import Authenticator
from orchestrator.services.metrics import FarmMetrics
from tests.unit.api_fakes import Stub, api_deps
from tests.unit.test_metrics import Farm, Queues

KEY = "k" * 32


def _client() -> TestClient[web.Request, web.Application]:
    keys = Authenticator(
        Stub(AssertionError),
        bootstrap_key=KEY,
        bootstrap=Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None),
        cache_s=2.0,
    )
    deps = api_deps(
        AssertionError, keys=keys, metrics=FarmMetrics(Farm(1.0), Queues()), health=SimpleNamespace(runs=0)
    )
    return TestClient(TestServer(create_app(deps)))


def _requests(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "api.request"]


async def test_each_request_is_one_line_with_its_route_status_time_and_key_name() -> None:
    async with _client() as client:
        with capture_logs() as logs:
            ok = await client.get("/api/metrics?secret=hunter2", headers={"Authorization": f"Bearer {KEY}"})
            refused = await client.get(
                "/api/metrics", headers={"Authorization": "Bearer wrong-key-" + "x" * 30}
            )
    assert (ok.status, refused.status) == (200, 401)
    first, second = _requests(logs)
    assert {k: first[k] for k in ("method", "route", "status", "key")} == {
        "method": "GET",
        "route": "/api/metrics",
        "status": 200,
        "key": BOOTSTRAP,
    }
    assert isinstance(first["ms"], float) and first["ms"] >= 0
    assert (second["status"], second["key"]) == (401, None)
    text = repr(logs)
    assert KEY not in text and "hunter2" not in text and "wrong-key" not in text


async def test_ids_in_the_path_are_fields_and_other_path_text_is_not_written() -> None:
    call_id = str(uuid.uuid4())
    hostile = "'; DROP TABLE calls; --"
    async with _client() as client:
        with capture_logs() as logs:
            await client.get(f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {KEY}"})
            await client.get(f"/v1/calls/{hostile}", headers={"Authorization": f"Bearer {KEY}"})
            await client.get("/no/such/route", headers={"Authorization": f"Bearer {KEY}"})
    by_id, by_text, unmatched = _requests(logs)
    assert (by_id["route"], by_id["call_id"]) == ("/v1/calls/{call_id}", call_id)
    assert by_text["route"] == "/v1/calls/{call_id}" and "call_id" not in by_text
    assert "DROP TABLE" not in repr(logs)
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)


async def test_a_passing_liveness_probe_is_not_logged_every_second() -> None:
    async with _client() as client:
        with capture_logs() as logs:
            live = await client.get("/health/live")
    assert live.status == 200
    assert _requests(logs) == []
