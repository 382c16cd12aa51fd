"""The REST contract against the running stack: bad input, idempotency, cancel, render-once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.cli import dispatcher_pid
from tests.integration.conftest import HeldPrompt, call_body, wait_final

Db = psycopg.Connection[dict[str, Any]]


def _count_calls(db: Db) -> int:
    row = db.execute("SELECT count(*) AS n FROM calls").fetchone()
    assert row is not None
    return int(row["n"])


async def test_health_reports_each_dependency(api: httpx.AsyncClient, api_url: str) -> None:
    """The checks are for a key with metrics:read (the bootstrap key here); anyone gets the status."""
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        status_only = await anonymous.get("/health")
    assert status_only.status_code == 200 and status_only.json() == {"status": "ok"}
    response = await api.get("/health")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert checks["postgres"]["ok"] and checks["redis"]["ok"] and checks["asterisk"]["ok"]
    assert any(node["ok"] for node in checks["asterisk"]["nodes"].values())
    assert checks["dispatcher"]["running"] >= 1 and checks["workers"]["running"] >= 1


async def test_health_reports_a_silent_dispatcher_as_degraded(api: httpx.AsyncClient, api_url: str) -> None:
    """Everything the API needs answers, but nothing would be dialed: the dispatcher is frozen
    (SIGSTOP) past its heartbeat. Health stays 200 (the API still takes calls: a load balancer
    must keep it) and says "degraded", naming the dispatcher; once it runs again, "ok"."""
    pid = dispatcher_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(11)
        frozen = await api.get("/health")
        async with httpx.AsyncClient(base_url=api_url) as anonymous:
            frozen_status = await anonymous.get("/health")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["status"] == "degraded" and frozen.json()["degraded"] == ["dispatcher"]
    assert (frozen_status.status_code, frozen_status.json()) == (200, {"status": "degraded"})
    dispatcher = frozen.json()["checks"]["dispatcher"]
    assert not dispatcher["ok"] and "no dispatcher" in dispatcher["error"]
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        while (await anonymous.get("/health")).json()["status"] != "ok":
            assert time.monotonic() < deadline, "health did not come back"
            await asyncio.sleep(0.5)


async def test_metrics_need_auth_and_count_calls(api: httpx.AsyncClient, api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/api/metrics")).status_code == 401
    body = (await api.get("/api/metrics")).json()
    assert set(body) >= {"calls_by_status", "queue_depths", "live_calls_per_node", "dial_pace_cps", "eta_s"}
    assert body["dial_pace_cps"] >= 0
    assert {"n1", "n2"} <= set(body["live_calls_per_node"])
    # A call held until later is queued, but not dialable now: it is not in the backlog whose
    # draining the ETA predicts.
    held = await api.post("/v1/calls", json=call_body(not_before="2099-01-01T00:00:00Z"))
    assert held.status_code == 202
    try:
        body = (await api.get("/api/metrics")).json()
        assert body["calls_by_status"]["queued"] - body["queue_depths"]["dialable"] >= 1, body
    finally:
        await api.post(f"/v1/calls/{held.json()['id']}/cancel")


async def test_v1_needs_the_key(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        missing = await anonymous.post("/v1/calls", json=call_body())
        wrong = await anonymous.get(f"/v1/calls/{uuid.uuid4()}", headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("content", "status", "code", "field"),
    [
        (b"{not json", 400, "malformed-json", None),
        (b"[1, 2]", 400, "malformed-json", None),
        (b'{"to": "+14155550123", "tts": {"text": "hi"}, "priority": 1}', 422, "unknown-field", "priority"),
        (b'{"to": "0044207", "tts": {"text": "hi"}}', 422, "invalid-field", "to"),
        (b'{"to": "+14155550123\\r\\nAction: Hangup", "tts": {"text": "hi"}}', 422, "invalid-field", "to"),
        (b'{"to": "+14155550123", "tts": {"text": "line\\nbreak"}}', 422, "invalid-field", "tts.text"),
        (
            b'{"to": "+14155550123", "tts": {"text": "hi"}, "ring_timeout_s": "30"}',
            422,
            "invalid-field",
            "ring_timeout_s",
        ),
        (
            b'{"to": "+14155550123", "tts": {"text": "hi"}, "trunk": "nosuchtrunk"}',
            422,
            "unknown-trunk",
            "trunk",
        ),
        (
            b'{"to": "+14155550123", "tts": {"text": "hi", "voice": "xx-nope"}}',
            422,
            "unknown-voice",
            "tts.voice",
        ),
    ],
)
async def test_bad_input_is_refused_and_nothing_stored(
    api: httpx.AsyncClient, db: Db, content: bytes, status: int, code: str, field: str | None
) -> None:
    before = _count_calls(db)
    response = await api.post("/v1/calls", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["field"] == field and error["message"]
    assert _count_calls(db) == before


async def test_oversized_body_is_413(api: httpx.AsyncClient, db: Db) -> None:
    before = _count_calls(db)
    body = call_body(metadata={"pad": "x" * 200_000})
    response = await api.post("/v1/calls", json=body)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body-too-large"
    assert _count_calls(db) == before


async def test_unknown_call_is_404(api: httpx.AsyncClient) -> None:
    for path in (f"/v1/calls/{uuid.uuid4()}", f"/v1/calls/{uuid.uuid4()}/events", "/v1/calls/not-a-uuid"):
        response = await api.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "no-such-call"


async def test_idempotent_replay(api: httpx.AsyncClient, db: Db) -> None:
    key = f"test-{uuid.uuid4()}"
    body = call_body(text=f"Idempotency {key}.")
    first = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": key})
    again = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": key})
    other = await api.post("/v1/calls", json=call_body(to="+14155550199"), headers={"Idempotency-Key": key})
    assert first.status_code == 202 and again.status_code == 200, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency-key-reused"
    row = db.execute("SELECT count(*) AS n FROM calls WHERE idempotency_key = %s", (key,)).fetchone()
    assert row is not None and row["n"] == 1
    final = await wait_final(api, first.json()["id"])
    assert len(final["attempts"]) == 1, "a replayed request must never dial twice"


async def test_concurrent_replays_make_one_call(api: httpx.AsyncClient, db: Db) -> None:
    key = f"race-{uuid.uuid4()}"
    body = call_body(text=f"Race {key}.")
    responses = await asyncio.gather(
        *(api.post("/v1/calls", json=body, headers={"Idempotency-Key": key}) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    row = db.execute("SELECT count(*) AS n FROM calls WHERE idempotency_key = %s", (key,)).fetchone()
    assert row is not None and row["n"] == 1


async def test_identical_messages_render_once(api: httpx.AsyncClient, db: Db) -> None:
    text = f"Render once {uuid.uuid4()}."
    first, second = await asyncio.gather(
        api.post("/v1/calls", json=call_body(text=text)),
        api.post("/v1/calls", json=call_body(to="+14155550124", text=text)),
    )
    calls = [await wait_final(api, r.json()["id"]) for r in (first, second)]
    assert [c["status"] for c in calls] == ["completed", "completed"]
    rows = db.execute(
        "SELECT DISTINCT audio_hash FROM calls WHERE id = ANY(%s)", ([c["id"] for c in calls],)
    ).fetchall()
    assert len(rows) == 1
    audio_hash = rows[0]["audio_hash"]
    asset = db.execute("SELECT * FROM audio_assets WHERE hash = %s", (audio_hash,)).fetchone()
    assert asset is not None and asset["render_count"] == 1 and asset["status"] == "ready"
    audio_dir = Path(asset["path"]).parent
    assert [p.name for p in audio_dir.glob(f"*{audio_hash}*")] == [f"{audio_hash}.ulaw"]
    assert (audio_dir / f"{audio_hash}.ulaw").stat().st_size > 8000  # more than a second of audio


async def test_cancel_before_dialing_never_dials(api: httpx.AsyncClient, db: Db) -> None:
    """Hold the call's prompt 'being rendered' (a pending asset nobody renders), so the call is
    certainly not dialed when the cancel arrives; then release the prompt and check it stays put."""
    held = HeldPrompt(db, f"Cancel me {uuid.uuid4()}.")
    created = await api.post("/v1/calls", json=held.body())
    assert created.status_code == 202, created.text
    call_id = created.json()["id"]
    canceled = await api.post(f"/v1/calls/{call_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    held.release()
    await asyncio.sleep(2)
    call = (await api.get(f"/v1/calls/{call_id}")).json()
    assert call["status"] == "canceled" and call["attempts"] == []
    again = await api.post(f"/v1/calls/{call_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "canceled"


async def test_cancel_live_call_hangs_up(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/calls", json=call_body(trunk="noanswer", ring_timeout_s=60, text="Cancel while ringing.")
    )
    call_id = created.json()["id"]
    for _ in range(100):
        status = (await api.get(f"/v1/calls/{call_id}")).json()["status"]
        if status == "ringing":
            break
        await asyncio.sleep(0.1)
    assert status == "ringing"
    assert (await api.post(f"/v1/calls/{call_id}/cancel")).status_code == 200
    call = await wait_final(api, call_id, timeout=20)
    assert call["status"] == "canceled" and call["answered_at"] is None


async def test_cancel_of_finished_call_is_409(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/calls", json=call_body(trunk="busy", text="Busy then cancel."))
    call = await wait_final(api, created.json()["id"])
    assert call["status"] == "busy"
    response = await api.post(f"/v1/calls/{call['id']}/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "call-already-final"


async def test_prometheus_exposition(api: httpx.AsyncClient, api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
    await api.get("/api/metrics")
    response = await api.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert 'sespcl_calls{status="completed"}' in text
    assert 'sespcl_live_calls{node="n1"}' in text and "sespcl_dial_pace_cps" in text
    assert 'sespcl_node_pace_cps{node="n1"}' in text, "each node's adaptive pace is exposed"
    assert 'sespcl_http_requests_total{method="GET",route="/api/metrics",status="200"}' in text
    assert 'route="/metrics",status="401"' in text, "refused requests are counted too"


async def test_api_keeps_serving_across_a_live_schema_change(api: httpx.AsyncClient, db: Db) -> None:
    """An upgrade migrates the schema while the old processes still run: adding (or dropping) a
    column must not break reads that a server-side prepared `SELECT *` plan would pin."""
    created = await api.post("/v1/calls", json=call_body(trunk="demo", not_before="2099-01-01T00:00:00Z"))
    assert created.status_code == 202, created.text
    path = f"/v1/calls/{created.json()['id']}"

    async def read_many() -> set[int]:
        # Concurrent reads spread over the pool's connections, each past psycopg's threshold (5)
        # for preparing a statement.
        return {r.status_code for r in await asyncio.gather(*(api.get(path) for _ in range(80)))}

    assert await read_many() == {200}
    column = f"test_live_{uuid.uuid4().hex[:8]}"
    try:
        db.execute(f"ALTER TABLE calls ADD COLUMN {column} int")
        db.execute(f"ALTER TABLE call_attempts ADD COLUMN {column} int")
        assert await read_many() == {200}
    finally:
        db.execute(f"ALTER TABLE calls DROP COLUMN IF EXISTS {column}")
        db.execute(f"ALTER TABLE call_attempts DROP COLUMN IF EXISTS {column}")
    assert await read_many() == {200}
    assert (await api.post(f"{path}/cancel")).status_code == 200


def test_each_process_names_its_database_sessions(db: Db) -> None:
    """Operators tell the processes apart in pg_stat_activity (locks, CPU) by application_name."""
    rows = db.execute(
        "SELECT DISTINCT application_name AS name FROM pg_stat_activity WHERE datname = current_database()"
    ).fetchall()
    names = {r["name"] for r in rows}
    assert {"sespcl-api", "sespcl-dispatcher", "sespcl-worker"} <= names, names
