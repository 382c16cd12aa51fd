"""Calls by status come from counts that triggers keep (schema.sql), not from counting the whole
table at every scrape. They must equal a real count, whatever wrote the calls."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orchestrator.persistence.db import migrate
from tests.integration.cli import sespcl
from tests.integration.conftest import _env, wait_cancel_done

Db = psycopg.Connection[dict[str, Any]]
Counts = dict[tuple[str | None, str], int]


def _both_counts(db: Db) -> tuple[Counts, Counts]:
    """The kept counts and a count of the table, read in one snapshot while the stack runs."""
    db.commit()
    db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        kept = db.execute(
            "SELECT campaign_id::text AS c, status, sum(n) AS n FROM call_status_counts "
            "GROUP BY 1, 2 HAVING sum(n) <> 0"
        ).fetchall()
        real = db.execute(
            "SELECT campaign_id::text AS c, status, count(*) AS n FROM calls GROUP BY 1, 2"
        ).fetchall()
        db.commit()
    finally:
        db.isolation_level = None
    return (
        {(r["c"], r["status"]): int(r["n"]) for r in kept},
        {(r["c"], r["status"]): int(r["n"]) for r in real},
    )


async def test_kept_counts_equal_a_count_of_the_calls_table(api: httpx.AsyncClient, db: Db) -> None:
    blocked = f"+1415{200 + uuid.uuid4().int % 800:03d}{uuid.uuid4().int % 10000:04d}"
    assert sespcl("dnc", "add", blocked).returncode == 0
    try:
        campaign = (
            await api.post(
                "/v1/campaigns",
                json={"name": "counts", "defaults": {"tts": {"text": "Counted."}}},
            )
        ).json()
        assert (await api.post(f"/v1/campaigns/{campaign['id']}/pause")).status_code == 200
        rows = "".join(json.dumps({"to": f"+1415555{i:04d}"}) + "\n" for i in range(30)) + json.dumps(
            {"to": blocked}
        )
        report = await api.post(
            f"/v1/campaigns/{campaign['id']}/calls",
            content=rows.encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert report.json()["accepted"] == 31, report.text
        kept, real = _both_counts(db)
        assert kept[(campaign["id"], "queued")] == 30 and kept[(campaign["id"], "canceled")] == 1
        assert kept == real
        assert (await api.post(f"/v1/campaigns/{campaign['id']}/cancel")).status_code == 200
        shown = await wait_cancel_done(api, campaign["id"])
        assert shown["counts"] == {"canceled": 31}, shown
        kept, real = _both_counts(db)
        assert kept == real, "every kind of write the suite made so far is counted"
    finally:
        sespcl("dnc", "remove", blocked)
    before = db.execute("SELECT count(*) AS n FROM call_status_counts").fetchone()
    db.execute("SELECT sespcl_fold_status_counts()")
    db.commit()
    kept, real = _both_counts(db)
    assert kept == real
    after = db.execute(
        "SELECT count(*) AS n, count(DISTINCT (campaign_id, status)) AS keys FROM call_status_counts"
    ).fetchone()
    db.commit()
    assert before is not None and after is not None
    assert after["n"] <= max(before["n"], after["keys"] + 20), "folding leaves about a row per key"


@pytest.fixture
def scratch_db() -> Iterator[str]:
    # making a database takes a superuser (the stack's roles may not)
    url = os.environ.get("SESPCL_DATABASE_ADMIN_URL") or _env("DATABASE_URL")
    name = f"sespcl_counts_{uuid.uuid4().hex[:8]}"
    admin_url = make_conninfo(url, dbname=conninfo_to_dict(url).get("dbname", "postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_database_from_before_the_counts_is_counted_when_migrated(scratch_db: str) -> None:
    migrate(scratch_db)
    with psycopg.connect(scratch_db, autocommit=True, row_factory=psycopg.rows.dict_row) as db:
        db.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text) VALUES (repeat('a', 64), 'e', 'v', 't')"
        )
        insert = (
            "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s,"
            " status) SELECT gen_random_uuid(), '+14155550100', 't', 't', 'v', repeat('a', 64), 30, s"
            " FROM unnest(%s::text[]) s"
        )
        db.execute(insert, (["queued", "completed", "completed"],))
        # As a database made before the counts: no triggers, no counts.
        for trigger in ("inserted", "updated", "deleted", "truncated"):
            db.execute(f"DROP TRIGGER calls_count_{trigger} ON calls")
        db.execute("DELETE FROM call_status_counts")
        db.execute(insert, (["busy"],))
        migrate(scratch_db)
        counts = db.execute("SELECT status, sum(n)::int AS n FROM call_status_counts GROUP BY 1").fetchall()
        assert {r["status"]: r["n"] for r in counts} == {"queued": 1, "completed": 2, "busy": 1}
        # One trigger lost (dropped by hand): the next migration counts afresh.
        db.execute("DROP TRIGGER calls_count_deleted ON calls")
        db.execute("DELETE FROM calls WHERE status = 'queued'")
        migrate(scratch_db)
        counts = db.execute("SELECT status, sum(n)::int AS n FROM call_status_counts GROUP BY 1").fetchall()
        assert {r["status"]: r["n"] for r in counts} == {"completed": 2, "busy": 1}
        db.execute(insert, (["queued"],))
        migrate(scratch_db)  # again: nothing counted twice
        db.execute("UPDATE calls SET status = 'canceled' WHERE status = 'queued'")
        db.execute("DELETE FROM calls WHERE status = 'busy'")
        counts = db.execute(
            "SELECT status, sum(n)::int AS n FROM call_status_counts GROUP BY 1 HAVING sum(n) <> 0"
        ).fetchall()
        assert {r["status"]: r["n"] for r in counts} == {"canceled": 1, "completed": 2}
        db.execute("TRUNCATE calls CASCADE")
        assert db.execute("SELECT count(*) AS n FROM call_status_counts").fetchone() == {"n": 0}
