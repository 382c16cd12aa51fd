"""Handlers for /v1/campaigns, /voice/bulk and the /v1/calls listing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import ValidationError

from orchestrator.api.access import principal
from orchestrator.api.body_stream import BodyIdle, BodyStream, BodyTooLarge, ChunkSource
from orchestrator.api.bulk_formats import READERS
from orchestrator.api.deps import DEPS, ApiDeps
from orchestrator.api.errors import ApiError
from orchestrator.api.framing import MalformedBody, RowTooLong
from orchestrator.api.idempotency import idempotent
from orchestrator.api.parsing import idle_error, json_body, validation_error
from orchestrator.api.presenters import call_json, campaign_json
from orchestrator.api.schemas import CampaignIn
from orchestrator.api.two_way import RowTwoWay, validation_context
from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import CampaignStatus
from orchestrator.services.idempotency import Answer


def _deps(request: web.Request) -> ApiDeps:
    return request.app[DEPS]


def _campaign_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["campaign_id"])
    except ValueError as exc:
        raise ApiError(404, "no-such-campaign", "no campaign with that id") from exc


def _limit(request: web.Request, default: int = 100, most: int = 1000) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(422, "invalid-field", f"limit must be 1 to {most}", "limit")
    return int(raw)


async def _describe(request: web.Request, campaign_id: UUID) -> dict[str, Any]:
    campaign, counts, pace, renders = await _deps(request).campaigns.describe(campaign_id)
    return campaign_json(campaign, counts, pace, renders)


async def _create(request: web.Request, parsed: CampaignIn) -> dict[str, Any]:
    return await _deps(request).campaigns.create(parsed.to_request(created_by=principal(request).name))


async def create_campaign(request: web.Request) -> web.Response:
    async def work(source: ChunkSource) -> Answer:
        body = await json_body(request, source)
        if not isinstance(body, dict):
            raise ApiError(400, "malformed-json", "the body must be a JSON object")
        try:
            parsed = CampaignIn.model_validate(body, context=validation_context(_deps(request).webhook_allow))
        except ValidationError as exc:
            raise validation_error(exc) from exc
        row = await _create(request, parsed)
        return Answer(201, await _describe(request, row["id"]), f"/v1/campaigns/{row['id']}")

    return await idempotent(request, work, most=_deps(request).max_body_bytes)


def _check_bulk_request(request: web.Request) -> None:
    """Media type and declared size, before anything is created or read."""
    if request.content_type not in READERS:
        raise ApiError(
            415,
            "unsupported-media-type",
            "send application/json (an array), application/x-ndjson or text/csv",
        )
    limit = _deps(request).max_bulk_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body-too-large", f"a bulk body may be at most {limit} bytes")


async def _intake(request: web.Request, campaign_id: UUID, source: ChunkSource) -> dict[str, Any]:
    deps = _deps(request)
    _check_bulk_request(request)
    reader = READERS[request.content_type]
    body = BodyStream(source, most=deps.max_bulk_bytes, idle_s=deps.upload_idle_s)
    try:
        who = principal(request)
        report = await deps.campaigns.intake(
            campaign_id,
            reader(body, deps.max_line_bytes),
            created_by=who.name,
            destinations=who.destinations,
            two_way=RowTwoWay(deps.webhook_allow, cells_are_text=request.content_type == "text/csv"),
        )
    except BodyTooLarge as exc:
        raise ApiError(
            413, "body-too-large", f"a bulk body may be at most {exc.most} bytes; nothing was stored"
        ) from exc
    except BodyIdle as exc:
        raise idle_error(exc) from exc
    except RowTooLong as exc:
        raise ApiError(
            422,
            f"{exc.what}-too-long",
            f"{exc} (SESPCL_MAX_LINE_BYTES); nothing was stored",
        ) from exc
    except MalformedBody as exc:
        raise ApiError(400, "malformed-body", f"{exc}; nothing was stored") from exc
    return dict(report.as_dict())


async def add_calls(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    _check_bulk_request(request)

    async def work(source: ChunkSource) -> Answer:
        return Answer(202, await _intake(request, campaign_id, source))

    return await idempotent(request, work, most=_deps(request).max_bulk_bytes)


BULK_QUERY = frozenset({"name", "text", "voice", "tts_mode", "trunk", "from", "ring_timeout_s", "cps"})
"""/voice/bulk's query parameters: CampaignIn's fields, flattened."""


def _bulk_number(query: Mapping[str, str], key: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(query[key])
    except ValueError as exc:
        raise ApiError(422, "invalid-field", f"{key}: not a number: {query[key]!r}", key) from exc


def _bulk_campaign(query: Mapping[str, str]) -> CampaignIn:
    """The campaign /voice/bulk's query describes, checked as a CampaignIn body would be."""
    unknown = sorted(set(query) - BULK_QUERY)
    if unknown:
        raise ApiError(422, "unknown-field", f"{unknown[0]}: unknown query parameter", unknown[0])
    if "text" not in query:
        raise ApiError(
            422, "invalid-field", "text: the message (it may hold {{variables}}) is required", "text"
        )
    tts: dict[str, Any] = {"text": query["text"]}
    defaults: dict[str, Any] = {"tts": tts}
    body: dict[str, Any] = {
        "name": query.get("name") or f"bulk {datetime.now(UTC).isoformat(timespec='seconds')}",
        "defaults": defaults,
    }
    defaults |= {key: query[key] for key in ("trunk", "from") if key in query}
    if "voice" in query:
        tts["voice"] = query["voice"]
    if "tts_mode" in query:
        tts["mode"] = query["tts_mode"]
    if "ring_timeout_s" in query:
        defaults["ring_timeout_s"] = _bulk_number(query, "ring_timeout_s", int)
    if "cps" in query:
        body["cps"] = _bulk_number(query, "cps", float)
    try:
        return CampaignIn.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc


async def voice_bulk(request: web.Request) -> web.Response:
    """The product guide's path: the campaign's settings in the query, the rows in the body."""
    _check_bulk_request(request)
    campaign = _bulk_campaign(request.query)

    async def work(source: ChunkSource) -> Answer:
        row = await _create(request, campaign)
        try:
            report = await _intake(request, row["id"], source)
        except Exception:
            # The upload stored nothing (all or nothing), so neither does the request: no campaign
            # left behind, empty, for a body that was refused.
            await _deps(request).campaigns.discard_if_empty(row["id"])
            raise
        return Answer(202, {"campaign_id": str(row["id"]), **report}, f"/v1/campaigns/{row['id']}")

    return await idempotent(request, work, most=_deps(request).max_bulk_bytes)


async def get_campaign(request: web.Request) -> web.Response:
    return web.json_response(await _describe(request, _campaign_id(request)))


async def list_campaigns(request: web.Request) -> web.Response:
    rows, cursor = await _deps(request).campaigns.page(
        limit=_limit(request, 50, 500), cursor=request.query.get("cursor")
    )
    return web.json_response({"campaigns": [campaign_json(r) for r in rows], "next_cursor": cursor})


def _status_change(status: CampaignStatus) -> Any:
    async def handler(request: web.Request) -> web.Response:
        campaign_id = _campaign_id(request)
        await _deps(request).campaigns.set_status(campaign_id, status)
        body = await _describe(request, campaign_id)
        if status is CampaignStatus.CANCELED:
            # The answer comes before the queued calls are canceled (in the background, `cancel`
            # shows how far): this counts the campaign's calls canceled so far.
            body["canceled_calls"] = body["counts"].get(CallStatus.CANCELED.value, 0)
        return web.json_response(body)

    return handler


def _call_status(request: web.Request) -> CallStatus | None:
    raw = request.query.get("status")
    try:
        return None if raw is None else CallStatus(raw)
    except ValueError as exc:
        raise ApiError(
            422, "invalid-field", f"status must be one of {[s.value for s in CallStatus]}", "status"
        ) from exc


async def list_calls(request: web.Request) -> web.Response:
    campaign: UUID | None = None
    if "campaign" in request.query:
        try:
            campaign = UUID(request.query["campaign"])
        except ValueError as exc:
            raise ApiError(422, "invalid-field", "campaign must be a campaign id", "campaign") from exc
    rows, cursor = await _deps(request).calls.page(
        campaign=campaign,
        status=_call_status(request),
        limit=_limit(request),
        cursor=request.query.get("cursor"),
    )
    return web.json_response({"calls": [call_json(r) for r in rows], "next_cursor": cursor})


def register(app: web.Application) -> None:
    app.router.add_post("/v1/campaigns", create_campaign)
    app.router.add_get("/v1/campaigns", list_campaigns)
    app.router.add_get("/v1/campaigns/{campaign_id}", get_campaign)
    app.router.add_post("/v1/campaigns/{campaign_id}/calls", add_calls)
    app.router.add_post("/v1/campaigns/{campaign_id}/pause", _status_change(CampaignStatus.PAUSED))
    app.router.add_post("/v1/campaigns/{campaign_id}/resume", _status_change(CampaignStatus.ACTIVE))
    app.router.add_post("/v1/campaigns/{campaign_id}/cancel", _status_change(CampaignStatus.CANCELED))
    app.router.add_post("/voice/bulk", voice_bulk)
    app.router.add_get("/v1/calls", list_calls)
