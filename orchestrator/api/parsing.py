"""Reading request bodies: size limits, JSON, and pydantic errors as the API's error shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from orchestrator.api import json_text
from orchestrator.api.deps import DEPS
from orchestrator.api.errors import ApiError


async def json_body(request: web.Request) -> Any:
    deps = request.app[DEPS]
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported-media-type", "send the body as application/json")
    if request.content_length is not None and request.content_length > deps.max_body_bytes:
        raise ApiError(413, "body-too-large", f"the body may be at most {deps.max_body_bytes} bytes")
    raw = await request.content.read(deps.max_body_bytes + 1)
    if len(raw) > deps.max_body_bytes:
        raise ApiError(413, "body-too-large", f"the body may be at most {deps.max_body_bytes} bytes")
    try:
        return json_text.loads(raw)
    except ValueError as exc:  # bad syntax or UTF-8, NaN, an integer of thousands of digits
        raise ApiError(400, "malformed-json", f"the body is not valid JSON: {json_text.reason(exc)}") from exc


def validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    code = "unknown-field" if first["type"] == "extra_forbidden" else "invalid-field"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return ApiError(422, code, f"{field}: {message}" if field else message, field)
