"""GET /v1/calls/{id}/webhooks: each event with its webhook id, status, tries and next try; 404
for an unknown call; the presenter's keys are the OpenAPI document's."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.api.webhooks import delivery_json, try_json
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.services.keys import Authenticator
from orchestrator.services.webhook_log import WebhookLog
from tests.unit.api_fakes import api_deps

KEY = "k" * 32
CALL = uuid.UUID("0193a6c2-8d2e-7c51-9a43-1f0e2b7c9d10")
QUIET_CALL = uuid.UUID("0193a6c2-8d2e-7c51-9a43-1f0e2b7c9d11")
AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text(encoding="utf-8"))


class NoKeys:
    async def by_id(self, key_id: str) -> dict[str, Any] | None:
        return None

    async def touch(self, key_id: str) -> None:
        return None


def _delivery(status: str, tries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    row = {
        "id": "msg_01a24e85640770dcb066a4c7892262be",
        "seq": 7,
        "type": "answered",
        "url": "https://hooks.clinic.example/sespcl",
        "status": status,
        "try_count": len(tries),
        "next_try_at": AT + timedelta(minutes=5),
        "created_at": AT,
        "delivered_at": None,
        "ended_at": None,
        "last_status_code": tries[-1]["status_code"] if tries else None,
        "last_error": tries[-1]["error"] if tries else None,
        "tries": tries,
    }
    return row | extra


TRIES = [
    {"number": 1, "at": AT, "status_code": 500, "latency_ms": 41.5, "error": "HTTP 500"},
    {
        "number": 2,
        "at": AT + timedelta(seconds=5),
        "status_code": None,
        "latency_ms": 15000.2,
        "error": "timeout (5 s to connect, 15 s in all)",
    },
]


class Log:
    async def call_exists(self, call_id: UUID) -> bool:
        return call_id in (CALL, QUIET_CALL)

    async def deliveries(self, call_id: UUID) -> list[dict[str, Any]]:
        return [_delivery("pending", TRIES)] if call_id == CALL else []


def _client() -> TestClient[Any, Any]:
    bootstrap = Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None)
    deps = api_deps(
        lambda name: AssertionError(name),
        keys=Authenticator(NoKeys(), bootstrap_key=KEY, bootstrap=bootstrap, cache_s=2.0),
        webhooks=WebhookLog(Log()),
    )
    return TestClient(TestServer(create_app(deps)))


async def test_a_calls_deliveries_show_each_try_and_the_next() -> None:
    async with _client() as client:
        answer = await client.get(f"/v1/calls/{CALL}/webhooks", headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status == 200
        [delivery] = (await answer.json())["webhooks"]
    assert delivery["webhook_id"] == "msg_01a24e85640770dcb066a4c7892262be"
    assert delivery["status"] == "pending"
    assert delivery["next_try_at"] == "2026-12-07T09:35:00+00:00"
    assert [t["status_code"] for t in delivery["tries"]] == [500, None]
    assert delivery["tries"][1]["error"].startswith("timeout")


async def test_a_call_without_callback_has_none_and_an_unknown_call_is_404() -> None:
    async with _client() as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        quiet = await client.get(f"/v1/calls/{QUIET_CALL}/webhooks", headers=auth)
        assert (quiet.status, await quiet.json()) == (200, {"webhooks": []})
        for unknown in (str(uuid.uuid4()), "not-a-uuid", "1%20OR%201=1"):
            answer = await client.get(f"/v1/calls/{unknown}/webhooks", headers=auth)
            assert answer.status == 404
            assert (await answer.json())["error"]["code"] == "no-such-call"
        assert (await client.get(f"/v1/calls/{CALL}/webhooks")).status == 401


def test_a_settled_delivery_has_no_next_try() -> None:
    done = delivery_json(_delivery("delivered", TRIES[:1], delivered_at=AT, ended_at=AT))
    assert done["next_try_at"] is None and done["delivered_at"] == AT.isoformat()


def test_the_presenter_keys_are_the_documented_ones() -> None:
    schemas = DOC["components"]["schemas"]
    body = delivery_json(_delivery("pending", TRIES))
    assert (
        set(schemas["WebhookDelivery"]["properties"])
        == set(body)
        == set(schemas["WebhookDelivery"]["required"])
    )
    assert set(schemas["WebhookTry"]["properties"]) == set(try_json(TRIES[0]))
