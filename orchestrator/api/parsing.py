"""Reading request bodies: size limits, JSON, and pydantic errors as the API's error shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from orchestrator.api import json_text
from orchestrator.api.body_stream import BodyIdle, BodyStream, BodyTooLarge, ChunkSource
from orchestrator.api.deps import DEPS
from orchestrator.api.errors import ApiError
from orchestrator.api.refusals import first_refusal


async def json_body(request: web.Request, source: ChunkSource | None = None) -> Any:
    """`source`: where the body is read from (None: the request's own stream)."""
    deps = request.app[DEPS]
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported-media-type", "send the body as application/json")
    too_large = ApiError(413, "body-too-large", f"the body may be at most {deps.max_body_bytes} bytes")
    if request.content_length is not None and request.content_length > deps.max_body_bytes:
        raise too_large
    body = BodyStream(source or request.content, most=deps.max_body_bytes, idle_s=deps.upload_idle_s)
    try:
        raw = await body.read_all()
    except BodyTooLarge as exc:
        raise too_large from exc
    except BodyIdle as exc:
        raise idle_error(exc) from exc
    try:
        return json_text.loads(raw)
    except ValueError as exc:  # bad syntax or UTF-8, NaN, an integer of thousands of digits, depth
        raise ApiError(400, "malformed-json", f"the body is not valid JSON: {json_text.reason(exc)}") from exc


def idle_error(exc: BodyIdle) -> ApiError:
    return ApiError(
        408,
        "upload-idle",
        f"{exc}: the request was cut off (SESPCL_UPLOAD_IDLE_S) and nothing of it was stored",
    )


def validation_error(exc: ValidationError) -> ApiError:
    field, code, message = first_refusal(exc)
    return ApiError(422, code, f"{field}: {message}" if field else message, field)
