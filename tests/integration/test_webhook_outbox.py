"""The webhook outbox in a PostgreSQL database of its own (made from schema.sql with
SESPCL_DATABASE_ADMIN_URL, dropped afterwards), so that the stack's own sender takes none of these
rows: the triggers' events, the claim's order and leases, 410, and the real `sespcl webhooks run`
process killed mid-delivery and stopped with SIGTERM, against a receiver in the test."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orchestrator.domain.webhook_delivery import Settlement, TryResult, Verdict
from orchestrator.persistence.db import migrate, open_pool
from orchestrator.persistence.webhooks import WebhookOutbox
from tests.integration.webhook_receiver import Receiver, receiving

Db = psycopg.Connection[dict[str, Any]]
REPO = Path(__file__).resolve().parents[2]
RECEIVER_ADDRESS = os.environ.get("SESPCL_WEBHOOK_TEST_RECEIVER", "127.0.60.1")
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
AUDIO = "c" * 64
URL = "https://hooks.pharmacy.example/sespcl"


@pytest.fixture(scope="module")
def private_url() -> Iterator[str]:
    admin = os.environ.get("SESPCL_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"sespcl_test_webhooks_{uuid.uuid4().hex[:8]}"
    server = psycopg.conninfo.make_conninfo(admin, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(private_url: str) -> Iterator[Db]:
    with psycopg.connect(private_url, row_factory=dict_row, autocommit=True) as conn:
        conn.execute("TRUNCATE calls CASCADE")
        conn.execute("TRUNCATE webhook_stopped_urls")
        conn.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text) VALUES (%s, 'espeak-ng', 'en-us', 'x') "
            "ON CONFLICT DO NOTHING",
            (AUDIO,),
        )
        yield conn


def _call(
    db: Db, callback: dict[str, Any] | None, *, to: str = "+14155552671", status: str = "queued"
) -> str:
    row = db.execute(
        """
        INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s,
                           metadata, status_callback, status)
        VALUES (gen_random_uuid(), %s, 'demo', 'Your prescription is ready.', 'en-us', %s, 30,
                '{"ref": "RX-88412"}', %s, %s)
        RETURNING id::text AS id
        """,
        (to, AUDIO, Jsonb(callback) if callback else None, status),
    ).fetchone()
    assert row is not None
    return str(row["id"])


def _events(db: Db, call_id: str) -> list[tuple[str, str, Any]]:
    rows = db.execute(
        "SELECT type, payload->>'status' AS status, payload->'hook' AS hook FROM webhook_deliveries "
        "WHERE call_id = %s ORDER BY seq",
        (call_id,),
    ).fetchall()
    return [(r["type"], r["status"], r["hook"]) for r in rows]


def test_the_triggers_write_each_event_in_order_filtered_by_the_callback(db: Db) -> None:
    every = _call(db, {"url": URL})
    finals_only = _call(db, {"url": URL, "events": ["completed", "digits"]}, to="+14155552672")
    silent = _call(db, None, to="+14155552673")
    ids = [every, finals_only, silent]
    db.execute("UPDATE calls SET status = 'initiated', attempt_count = 1 WHERE id = ANY(%s::uuid[])", (ids,))
    db.execute("UPDATE calls SET status = 'ringing' WHERE id = ANY(%s::uuid[])", (ids,))
    db.execute("UPDATE calls SET status = 'queued' WHERE id = ANY(%s::uuid[])", (ids,))  # a retry: no event
    db.execute(
        "UPDATE calls SET status = 'in-progress', answered_by = 'human' WHERE id = ANY(%s::uuid[])", (ids,)
    )
    db.execute(
        "UPDATE calls SET digits = '1', hooks = '{\"rating\": \"4\"}' WHERE id = ANY(%s::uuid[])", (ids,)
    )
    db.execute(
        'UPDATE calls SET hooks = \'{"rating": "4", "callback": "yes"}\' WHERE id = ANY(%s::uuid[])', (ids,)
    )
    db.execute("UPDATE calls SET updated_at = now() WHERE id = ANY(%s::uuid[])", (ids,))  # nothing new
    db.execute(
        "UPDATE calls SET status = 'completed', status_reason = 'answered' WHERE id = ANY(%s::uuid[])", (ids,)
    )
    assert _events(db, every) == [
        ("initiated", "initiated", None),
        ("ringing", "ringing", None),
        ("answered", "in-progress", None),
        ("machine_detection", "in-progress", None),
        ("digits", "in-progress", None),
        ("hook", "in-progress", {"name": "rating", "value": "4"}),
        ("hook", "in-progress", {"name": "callback", "value": "yes"}),
        ("completed", "completed", None),
    ]
    assert _events(db, finals_only) == [("digits", "in-progress", None), ("completed", "completed", None)]
    assert _events(db, silent) == []
    payload = db.execute(
        "SELECT payload FROM webhook_deliveries WHERE call_id = %s AND type = 'completed'", (every,)
    ).fetchone()
    assert payload is not None
    body = payload["payload"]
    assert body["call_id"] == every and body["to"] == "+14155552671" and body["attempt"] == 1
    assert (
        body["metadata"] == {"ref": "RX-88412"} and body["digits"] == "1" and body["answered_by"] == "human"
    )
    assert body["hooks"] == {"rating": "4", "callback": "yes"} and body["at"].endswith("Z")


def test_a_call_inserted_final_reports_completed(db: Db) -> None:
    blocked = _call(db, {"url": URL}, status="canceled")  # e.g. a number on the do-not-call list
    assert _events(db, blocked) == [("completed", "canceled", None)]


async def test_a_claim_takes_each_calls_oldest_event_once_and_a_lapsed_lease_again(
    db: Db, private_url: str
) -> None:
    other_url = "https://crm.partner.example/hooks/calls"
    first, second = _call(db, {"url": URL}), _call(db, {"url": other_url}, to="+14155552672")
    db.execute("UPDATE calls SET status = 'initiated' WHERE id = ANY(%s::uuid[])", ([first, second],))
    db.execute("UPDATE calls SET status = 'ringing' WHERE id = ANY(%s::uuid[])", ([first, second],))
    pool = await open_pool(private_url, name="test-webhooks", max_size=2)
    try:
        outbox = WebhookOutbox(pool)
        taken = await outbox.claim(10, lease_s=60)
        assert sorted((d.call_id, json.loads(d.body)["type"]) for d in taken) == sorted(
            [(first, "initiated"), (second, "initiated")]
        )
        assert await outbox.claim(10, lease_s=60) == []  # leased; the ringing events wait behind them
        db.execute("UPDATE webhook_deliveries SET leased_until = now() - interval '1 s' WHERE tries = 0")
        again = await outbox.claim(10, lease_s=60)
        assert {d.id for d in again} == {d.id for d in taken}
        now = datetime.now(UTC)
        gone = next(d for d in again if d.call_id == first)
        ok = next(d for d in again if d.call_id == second)
        await outbox.settle(
            [
                Settlement(
                    delivery_id=gone.id,
                    verdict=Verdict.STOPPED,
                    result=TryResult(at=now, latency_ms=8.0, status_code=410, error="HTTP 410"),
                    stop_url=URL,
                ),
                Settlement(
                    delivery_id=ok.id,
                    verdict=Verdict.RETRY,
                    result=TryResult(at=now, latency_ms=15000.0, error="timeout"),
                    next_try_at=now + timedelta(seconds=5),
                ),
            ]
        )
    finally:
        await pool.close()
    rows = db.execute(
        "SELECT call_id::text, type, status, tries, leased_until FROM webhook_deliveries ORDER BY seq"
    ).fetchall()
    states = {(r["call_id"], r["type"]): (r["status"], r["tries"]) for r in rows}
    assert states[(first, "initiated")] == ("stopped", 1)
    assert states[(first, "ringing")] == ("stopped", 0)  # the URL said 410: nothing more to it
    assert states[(second, "initiated")] == ("pending", 1)  # another URL: retried
    assert states[(second, "ringing")] == ("pending", 0)
    tries = db.execute(
        "SELECT delivery_id, number, status_code, error FROM webhook_tries ORDER BY at"
    ).fetchall()
    assert [(t["number"], t["status_code"]) for t in tries] == [(1, 410), (1, None)]
    assert db.execute("SELECT url FROM webhook_stopped_urls").fetchall() == [{"url": URL}]


# ---- the real process ------------------------------------------------------------------------


class SenderProcess:
    def __init__(self, url: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": url,
            "SESPCL_WEBHOOK_SECRET": SECRET,
            "SESPCL_WEBHOOK_ALLOW_HOSTS": RECEIVER_ADDRESS,
            "SESPCL_LOG_JSON": "true",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "webhooks", "run"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def kill(self, sig: int) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=20)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving(SECRET, RECEIVER_ADDRESS) as state:
        yield state


async def _until(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.1)


def _make_events(db: Db, url: str, calls: int) -> list[str]:
    ids = [_call(db, {"url": url}, to=f"+1415277{3000 + i:04d}") for i in range(calls)]
    for status in ("initiated", "ringing", "in-progress", "completed"):
        db.execute("UPDATE calls SET status = %s WHERE id = ANY(%s::uuid[])", (status, ids))
    return ids


def _order(db: Db) -> dict[str, list[str]]:
    rows = db.execute("SELECT call_id::text, id FROM webhook_deliveries ORDER BY seq").fetchall()
    order: dict[str, list[str]] = {}
    for row in rows:
        order.setdefault(row["call_id"], []).append(row["id"])
    return order


async def test_the_sender_killed_mid_delivery_loses_nothing_and_keeps_each_calls_order(
    db: Db, private_url: str, receiver: Receiver
) -> None:
    url = receiver.url("hold")
    _make_events(db, url, calls=3)
    first = SenderProcess(private_url)
    try:
        await _until(lambda: len(receiver.held) == 3, 20, "each call's first event held open")
    finally:
        assert first.kill(signal.SIGKILL) == -signal.SIGKILL
    leased = db.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE leased_until > now()").fetchone()
    assert leased == {"n": 3}
    # The leases would run out in 60 s: the test moves them on instead of waiting.
    db.execute("UPDATE webhook_deliveries SET leased_until = now() WHERE leased_until IS NOT NULL")
    receiver.release.set()
    second = SenderProcess(private_url)
    try:
        await _until(
            lambda: (
                db.execute("SELECT bool_and(status = 'delivered') AS done FROM webhook_deliveries").fetchone()
                == {"done": True}
            ),
            30,
            "every event delivered",
        )
    finally:
        assert second.kill(signal.SIGTERM) == 0
    delivered = receiver.delivered(receiver.path(url).rsplit("/", 1)[0])
    for call_id, ids in _order(db).items():
        heard = [a.webhook_id for a in delivered if a.payload["call_id"] == call_id]
        assert list(dict.fromkeys(heard)) == ids, f"call {call_id} out of order or incomplete"
    assert receiver.bad == []
    assert set(receiver.held[:3]) == {ids[0] for ids in _order(db).values()}


async def test_a_stopped_sender_gives_its_leases_back(db: Db, private_url: str, receiver: Receiver) -> None:
    _make_events(db, receiver.url("hold"), calls=2)
    sender = SenderProcess(private_url)
    try:
        await _until(lambda: len(receiver.held) == 2, 20, "both calls' first events held open")
    finally:
        started = time.monotonic()
        assert sender.kill(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    rows = db.execute("SELECT status, tries, leased_until FROM webhook_deliveries").fetchall()
    assert all(r["status"] == "pending" and r["leased_until"] is None and r["tries"] == 0 for r in rows)
