"""docs/openapi.json describes exactly what the code serves: routes, request fields, response keys."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.api.app import OPENAPI_PATH, ApiDeps, create_app
from orchestrator.api.presenters import attempt_json, call_json, event_json
from orchestrator.api.schemas import CallIn, TtsIn

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DOC_PATH.read_text(encoding="utf-8")))


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return cast(dict[str, Any], doc["components"]["schemas"][name])


def _aliases(model: type[CallIn] | type[TtsIn]) -> tuple[set[str], set[str]]:
    """(every field's JSON name, the JSON names of the required fields)."""
    names = {field.alias or name for name, field in model.model_fields.items()}
    required = {field.alias or name for name, field in model.model_fields.items() if field.is_required()}
    return names, required


def _sample_call_row() -> dict[str, Any]:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    return {
        "id": uuid.uuid4(), "to_number": "+14155550123", "from_number": None, "trunk": "demo",
        "status": "completed", "status_reason": "answered", "tts_text": "Hello", "tts_voice": "en-us",
        "ring_timeout_s": 30, "created_at": now, "updated_at": now, "answered_at": now,
        "ended_at": now + timedelta(seconds=3), "hangup_cause": 16, "hangup_cause_text": "Normal Clearing",
        "metadata": {"customer": 42},
    }


def _sample_attempt_row() -> dict[str, Any]:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    return {
        "id": uuid.uuid4(), "number": 1, "node": "n1", "trunk": "demo", "status": "completed",
        "started_at": now, "answered_at": now, "ended_at": now, "hangup_cause": 16,
        "hangup_cause_text": "Normal Clearing",
    }


def test_the_served_document_is_this_file() -> None:
    assert OPENAPI_PATH == DOC_PATH


def test_documented_routes_are_exactly_the_registered_routes(doc: dict[str, Any]) -> None:
    # Stand-ins: create_app only stores the deps; nothing is called while routing is inspected.
    deps = ApiDeps(calls=cast(Any, object()), store=cast(Any, object()), queues=cast(Any, object()),
                   api_key="k" * 32, max_body_bytes=65536)
    app = create_app(deps)
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
    event = event_json({"seq": 1, "at": datetime(2025, 1, 1, tzinfo=UTC), "type": "status",
                        "attempt_id": None, "data": {}})
    assert set(_schema(doc, "Event")["properties"]) == set(event)
