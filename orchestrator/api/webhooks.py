"""GET /v1/calls/{id}/webhooks: each status-callback event of a call, its delivery and tries."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web

from orchestrator.api.deps import DEPS
from orchestrator.api.errors import ApiError


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def try_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": row["number"],
        "at": _iso(row["at"]),
        "status_code": row["status_code"],
        "latency_ms": row["latency_ms"],
        "error": row["error"],
    }


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    pending = row["status"] == "pending"
    return {
        "webhook_id": row["id"],
        "type": row["type"],
        "url": row["url"],
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
        "next_try_at": _iso(row["next_try_at"]) if pending else None,
        "delivered_at": _iso(row["delivered_at"]),
        "ended_at": _iso(row["ended_at"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "tries": [try_json(t) for t in row["tries"]],
    }


async def get_call_webhooks(request: web.Request) -> web.Response:
    try:
        call_id = UUID(request.match_info["call_id"])
    except ValueError as exc:
        raise ApiError(404, "no-such-call", "no call with that id") from exc
    deliveries = await request.app[DEPS].webhooks.deliveries(call_id)
    return web.json_response({"webhooks": [delivery_json(d) for d in deliveries]})


def register(app: web.Application) -> None:
    app.router.add_get("/v1/calls/{call_id}/webhooks", get_call_webhooks)
