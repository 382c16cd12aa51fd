"""docs/openapi.json describes exactly what the code serves: routes, request fields, response keys."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import BaseModel

from orchestrator.api.access import PRINCIPAL, ROUTE_SCOPES, auth_middleware
from orchestrator.api.app import OPENAPI_PATH, create_app
from orchestrator.api.bulk_formats import READERS
from orchestrator.api.campaigns import list_calls, list_campaigns, voice_bulk
from orchestrator.api.deps import ApiDeps
from orchestrator.api.errors import ApiError
from orchestrator.api.idempotency import IDEMPOTENCY_KEY_MAX, REPLAYED_HEADER
from orchestrator.api.presenters import attempt_json, call_json, campaign_json, event_json
from orchestrator.api.schemas import CallIn, CampaignDefaultsIn, CampaignIn, CampaignTtsIn
from orchestrator.api.tts_fields import TtsIn
from orchestrator.api.two_way import AmdIn, DialplanIn, GatherIn, ReplyIn, StatusCallbackIn, VoicemailIn
from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import ROW_TWO_WAY, CampaignStatus, RowError
from orchestrator.domain.keys import Principal, Scope
from orchestrator.domain.webhooks import WebhookEvent
from orchestrator.services.campaigns import MAX_REPORTED_ERRORS, IntakeReport
from tests.unit.api_fakes import Stub, api_deps

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DOC_PATH.read_text(encoding="utf-8")))


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return cast(dict[str, Any], doc["components"]["schemas"][name])


def _aliases(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """(every field's JSON name, the JSON names of the required fields)."""
    names = {field.alias or name for name, field in model.model_fields.items()}
    required = {field.alias or name for name, field in model.model_fields.items() if field.is_required()}
    return names, required


def _sample_call_row() -> dict[str, Any]:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    return {
        "id": uuid.uuid4(),
        "to_number": "+14155550123",
        "from_number": None,
        "trunk": "demo",
        "status": "completed",
        "status_reason": "answered",
        "tts_text": "Hello",
        "tts_voice": "en-us",
        "ring_timeout_s": 30,
        "created_at": now,
        "updated_at": now,
        "answered_at": now,
        "ended_at": now + timedelta(seconds=3),
        "hangup_cause": 16,
        "hangup_cause_text": "Normal Clearing",
        "metadata": {"customer": 42},
    }


def _sample_attempt_row() -> dict[str, Any]:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    return {
        "id": uuid.uuid4(),
        "number": 1,
        "node": "n1",
        "trunk": "demo",
        "status": "completed",
        "started_at": now,
        "answered_at": now,
        "ended_at": now,
        "hangup_cause": 16,
        "hangup_cause_text": "Normal Clearing",
    }


class Reached(Exception):
    """Raised by the stand-in stores: the handler got past its own checks of the request."""


def _stub_deps() -> ApiDeps:
    return api_deps(Reached)


def _documented_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def _sample_campaign_row() -> dict[str, Any]:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    return {
        "id": uuid.uuid4(),
        "name": "outage",
        "status": "active",
        "trunk": "demo",
        "from_number": None,
        "tts_template": "Hello {{name}}",
        "tts_voice": "en-us",
        "ring_timeout_s": 30,
        "cps": 50.0,
        "created_at": now,
        "updated_at": now,
    }


def test_the_served_document_is_this_file() -> None:
    assert OPENAPI_PATH == DOC_PATH


def test_documented_routes_are_exactly_the_registered_routes(doc: dict[str, Any]) -> None:
    app = create_app(_stub_deps())
    registered = {
        (route.method.upper(), route.resource.canonical)
        for route in app.router.routes()
        if route.method.upper() != "HEAD" and route.resource is not None
    }
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert registered == documented


def test_call_request_fields_match_the_pydantic_model(doc: dict[str, Any]) -> None:
    schema = _schema(doc, "CallRequest")
    names, required = _aliases(CallIn)
    assert set(schema["properties"]) == names
    assert set(schema.get("required", [])) == required
    assert schema["additionalProperties"] is False

    tts = _schema(doc, "TtsRequest")
    names, required = _aliases(TtsIn)
    assert set(tts["properties"]) == names
    assert set(tts.get("required", [])) == required
    assert tts["additionalProperties"] is False


def test_call_schema_keys_match_the_presenter(doc: dict[str, Any]) -> None:
    body = call_json(_sample_call_row(), [_sample_attempt_row()])
    schema = _schema(doc, "Call")
    assert set(schema["properties"]) == set(body)
    assert set(schema["required"]) == set(body)
    assert set(schema["properties"]["tts"]["properties"]) == set(body["tts"])
    assert set(_schema(doc, "HangupCause")["properties"]) == set(body["hangup_cause"])

    attempt = _schema(doc, "Attempt")
    assert set(attempt["properties"]) == set(attempt_json(_sample_attempt_row()))
    assert set(attempt["required"]) == set(attempt["properties"])


def test_event_schema_keys_match_the_presenter(doc: dict[str, Any]) -> None:
    event = event_json(
        {"seq": 1, "at": datetime(2025, 1, 1, tzinfo=UTC), "type": "status", "attempt_id": None, "data": {}}
    )
    assert set(_schema(doc, "Event")["properties"]) == set(event)


def _assert_schemas_are_models(doc: dict[str, Any], pairs: tuple[tuple[str, type[BaseModel]], ...]) -> None:
    """Each named request schema has exactly its model's fields, the same required, no others."""
    for name, model in pairs:
        schema = _schema(doc, name)
        names, required = _aliases(model)
        assert set(schema["properties"]) == names, name
        assert set(schema.get("required", [])) == required, name
        assert schema["additionalProperties"] is False, name


def test_campaign_request_fields_match_the_pydantic_models(doc: dict[str, Any]) -> None:
    _assert_schemas_are_models(
        doc,
        (
            ("CampaignRequest", CampaignIn),
            ("CampaignDefaultsRequest", CampaignDefaultsIn),
            ("CampaignTtsRequest", CampaignTtsIn),
        ),
    )


def test_campaign_schemas_match_the_presenter(doc: dict[str, Any]) -> None:
    row = _sample_campaign_row()
    listed = campaign_json(row)
    single = campaign_json(row, {"queued": 3, "completed": 1}, 0.5, (12, 5))
    summary, campaign, canceled = (
        _schema(doc, n) for n in ("CampaignSummary", "Campaign", "CanceledCampaign")
    )
    assert set(summary["properties"]) == set(summary["required"]) == set(listed)
    assert set(campaign["properties"]) == set(campaign["required"]) == set(single)
    assert set(canceled["properties"]) == set(canceled["required"]) == set(single) | {"canceled_calls"}
    # The three spell out the same keys: they must say the same about them.
    for key, prop in summary["properties"].items():
        assert campaign["properties"][key] == prop == canceled["properties"][key], key
    for key, prop in campaign["properties"].items():
        assert canceled["properties"][key] == prop, key
    defaults = _schema(doc, "CampaignDefaults")
    assert set(defaults["properties"]) == set(defaults["required"]) == set(listed["defaults"])
    assert set(defaults["properties"]["tts"]["properties"]) == set(listed["defaults"]["tts"])
    assert set(_schema(doc, "CampaignStatus")["enum"]) == {s.value for s in CampaignStatus}
    assert set(_schema(doc, "CallStatus")["enum"]) == {s.value for s in CallStatus}


def test_listed_calls_are_calls_without_attempts(doc: dict[str, Any]) -> None:
    listed = call_json(_sample_call_row())
    summary, call = _schema(doc, "CallSummary"), _schema(doc, "Call")
    assert set(summary["properties"]) == set(summary["required"]) == set(listed)
    assert summary["properties"] == {k: v for k, v in call["properties"].items() if k != "attempts"}


def test_intake_report_matches_the_service(doc: dict[str, Any]) -> None:
    report = IntakeReport()
    report.reject(3, RowError("to", "required: an E.164 number"))
    body = report.as_dict()
    schema = _schema(doc, "IntakeReport")
    assert set(schema["properties"]) == set(schema["required"]) == set(body)
    assert schema["properties"]["errors"]["maxItems"] == MAX_REPORTED_ERRORS
    row_error = _schema(doc, "RowError")
    assert set(row_error["properties"]) == set(row_error["required"]) == set(body["errors"][0])
    bulk = _schema(doc, "BulkIntakeReport")
    assert set(bulk["properties"]) == set(bulk["required"]) == {"campaign_id"} | set(body)


@pytest.mark.parametrize("path", ["/v1/campaigns/{campaign_id}/calls", "/voice/bulk"])
def test_upload_media_types_are_the_readers(doc: dict[str, Any], path: str) -> None:
    assert set(doc["paths"][path]["post"]["requestBody"]["content"]) == set(READERS)


async def test_voice_bulk_query_parameters_are_the_documented_ones(doc: dict[str, Any]) -> None:
    params = {
        p["name"]: p for p in doc["paths"]["/voice/bulk"]["post"]["parameters"] if p.get("in") == "query"
    }
    assert {n for n, p in params.items() if p.get("required")} == {"text"}
    sample = {
        "name": "x",
        "text": "Hello {{name}}",
        "voice": "en-us",
        "trunk": "demo",
        "from": "+14155550123",
        "ring_timeout_s": "30",
        "cps": "5",
    }
    assert set(sample) == set(params)
    app = create_app(_stub_deps())

    def request(query: dict[str, str]) -> web.Request:
        mocked = make_mocked_request(
            "POST",
            f"/voice/bulk?{urlencode(query)}",
            app=app,
            headers={"Content-Type": "application/x-ndjson"},
        )
        mocked[PRINCIPAL] = Principal("ops", frozenset({Scope.CAMPAIGNS_WRITE}), None)
        return mocked

    with pytest.raises(Reached):  # every documented parameter is accepted: the campaign gets created
        await voice_bulk(request(sample))
    with pytest.raises(ApiError) as refused:
        await voice_bulk(request({**sample, "undocumented": "1"}))
    assert (refused.value.status, refused.value.code) == (422, "unknown-field")
    with pytest.raises(ApiError) as missing:
        await voice_bulk(request({k: v for k, v in sample.items() if k != "text"}))
    assert (missing.value.status, missing.value.field) == (422, "text")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/v1/calls", "202"),
        ("/v1/campaigns", "201"),
        ("/v1/campaigns/{campaign_id}/calls", "202"),
        ("/voice/bulk", "202"),
    ],
)
def test_idempotency_key_is_documented_where_it_is_read(doc: dict[str, Any], path: str, ok: str) -> None:
    op = doc["paths"][path]["post"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in op["parameters"]
    key = doc["components"]["parameters"]["IdempotencyKey"]["schema"]
    assert key["maxLength"] == IDEMPOTENCY_KEY_MAX
    assert "`invalid-idempotency-key`" in op["responses"]["400"]["description"]
    assert "`idempotency-key-reused`" in op["responses"]["409"]["description"]
    if path != "/v1/calls":  # the bulk paths: replayed as first answered, or still running
        assert "`idempotency-key-in-use`" in op["responses"]["409"]["description"]
        assert "Retry-After" in op["responses"]["409"]["headers"]
        assert REPLAYED_HEADER in op["responses"][ok]["headers"]


@pytest.mark.parametrize(
    ("path", "handler", "service"),
    [
        ("/v1/calls", list_calls, "calls"),
        ("/v1/campaigns", list_campaigns, "campaigns"),
    ],
)
async def test_list_limits_are_the_documented_ones(
    doc: dict[str, Any], path: str, handler: Any, service: str
) -> None:
    params = {p.get("name"): p for p in doc["paths"][path]["get"]["parameters"]}
    limit = params["limit"]["schema"]
    for value, accepted in (
        (None, True),
        (limit["minimum"], True),
        (limit["maximum"], True),
        (limit["minimum"] - 1, False),
        (limit["maximum"] + 1, False),
    ):
        deps = _stub_deps()
        query = "" if value is None else f"?limit={value}"
        request = make_mocked_request("GET", path + query, app=create_app(deps))
        if accepted:
            with pytest.raises(Reached):
                await handler(request)
            name, kwargs = cast(Stub, getattr(deps, service)).calls[-1]
            assert (name, kwargs["limit"]) == ("page", limit["default"] if value is None else value)
        else:
            with pytest.raises(ApiError) as refused:
                await handler(request)
            assert (refused.value.status, refused.value.field) == (422, "limit")


def _auth_cases() -> list[Any]:
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    return [
        pytest.param(method, path, op, id=f"{method} {path}")
        for method, path, op in _documented_operations(doc)
    ]


@pytest.mark.parametrize(("method", "path", "op"), _auth_cases())
async def test_documented_security_is_what_the_middleware_enforces(
    doc: dict[str, Any], method: str, path: str, op: dict[str, Any]
) -> None:
    # An empty requirement ({}) among the alternatives: the key is optional (/health's detail).
    security = op.get("security", doc.get("security", []))
    needs_key = bool(security) and {} not in security
    concrete = path.replace("{call_id}", str(uuid.uuid4())).replace("{campaign_id}", str(uuid.uuid4()))
    request = make_mocked_request(method, concrete, app=create_app(_stub_deps()))

    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(text="passed")

    try:
        await auth_middleware(request, handler)
        refused = False
    except ApiError as exc:
        assert (exc.status, exc.code) == (401, "unauthorized")
        refused = True
    assert refused == needs_key


@pytest.mark.parametrize(("method", "path", "op"), _auth_cases())
def test_documented_scope_is_the_route_scope(method: str, path: str, op: dict[str, Any]) -> None:
    scope = ROUTE_SCOPES[(method, path)]
    if path == "/health":  # public; its detail needs metrics:read (api/health.py)
        assert scope is None and op["x-required-scope"] == Scope.METRICS_READ.value
        return
    assert op.get("x-required-scope") == (scope.value if scope else None)
    if scope is not None:
        assert {"401", "403", "429"} <= set(op["responses"])


def test_two_way_schemas_match_the_pydantic_models(doc: dict[str, Any]) -> None:
    _assert_schemas_are_models(
        doc,
        (
            ("Gather", GatherIn),
            ("DigitReply", ReplyIn),
            ("AmdTuning", AmdIn),
            ("Voicemail", VoicemailIn),
            ("Dialplan", DialplanIn),
            ("StatusCallback", StatusCallbackIn),
        ),
    )
    assert set(_schema(doc, "WebhookEvent")["enum"]) == {e.value for e in WebhookEvent}
    assert set(_schema(doc, "BulkRow")["properties"]) >= ROW_TWO_WAY


def test_the_documented_call_example_is_a_body_the_api_takes(doc: dict[str, Any]) -> None:
    example = _schema(doc, "CallRequest")["example"]
    asked = CallIn.model_validate(example).interaction_request()
    assert asked.gather is not None and asked.on_digits["9"].dnc
