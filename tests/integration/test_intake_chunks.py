"""An upload larger than one intake chunk (persistence/intake.py CHUNK_ROWS) on the real stack:
stored a chunk at a time in one transaction, it keeps every rule of a small one (a number once
per campaign across chunks, the do-not-call list with one status event, upload order) and is
still all or nothing when the client goes away after its first chunks are inserted."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from orchestrator.persistence.calls import DNC_REASON
from orchestrator.persistence.intake import CHUNK_ROWS
from tests.integration.cli import sespcl
from tests.integration.conftest import nanp_numbers, new_campaign
from tests.integration.test_campaigns import _raw_post

NAMES = ("Anneliese", "Bartholomew", "Chidinma", "Dagny", "Eero", "Fatoumata", "Gwilym", "Hyun-woo")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def _row(to: str, n: int) -> str:
    return json.dumps({"to": to, "name": NAMES[n % len(NAMES)], "day": DAYS[n % len(DAYS)]}) + "\n"


async def test_an_upload_of_several_chunks_keeps_every_rule(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    distinct = nanp_numbers(2 * CHUNK_ROWS + 5_000)
    blocked = distinct[100]
    assert sespcl("dnc", "add", blocked, "--reason", "asked in a reply").returncode == 0
    campaign = (await new_campaign(api))["id"]
    try:
        assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
        # Every 20th row of the later chunks repeats a number of the first chunk (the blocked
        # one among them): skipped as already in the campaign, whichever chunk brought it.
        numbers = list(distinct)
        repeats = [distinct[(i * 20) % CHUNK_ROWS] for i in range(len(distinct) // 20)]
        for i, number in enumerate(repeats):
            numbers.insert(CHUNK_ROWS + 1 + i * 21, number)
        body = "".join(_row(to, n) for n, to in enumerate(numbers)).encode()
        upload = await api.post(
            f"/v1/campaigns/{campaign}/calls",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
            timeout=120,
        )
        assert upload.status_code == 202, upload.text
        report = upload.json()
        assert (report["accepted"], report["duplicates"], report["rejected"]) == (
            len(distinct),
            len(repeats),
            0,
        )

        stored = db.execute(
            "SELECT status, count(*) AS n FROM calls WHERE campaign_id = %s GROUP BY status", (campaign,)
        ).fetchall()
        assert {r["status"]: r["n"] for r in stored} == {"queued": len(distinct) - 1, "canceled": 1}
        events = db.execute(
            "SELECT e.data FROM call_events e JOIN calls c ON c.id = e.call_id "
            "WHERE c.campaign_id = %s AND c.to_number = %s",
            (campaign, blocked),
        ).fetchall()
        assert [e["data"] for e in events] == [{"status": "canceled", "reason": DNC_REASON}]
        # Upload order is dial order, across chunks.
        order = db.execute(
            "SELECT to_number FROM calls WHERE campaign_id = %s ORDER BY not_before, id", (campaign,)
        ).fetchall()
        assert [r["to_number"] for r in order] == distinct
        described = (await api.get(f"/v1/campaigns/{campaign}")).json()
        assert described["counts"] == {"queued": len(distinct) - 1, "canceled": 1}
        # Each name and day once, the fixed text once: the audio of the whole upload.
        assert described["renders"]["needed"] == 1 + len(NAMES) + 1 + len(DAYS)
    finally:
        sespcl("dnc", "remove", blocked)
        await api.post(f"/v1/campaigns/{campaign}/cancel")


async def test_an_upload_cut_off_after_chunks_were_inserted_stores_nothing(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]], api_url: str, api_key: str
) -> None:
    campaign = (await new_campaign(api))["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    rows = "".join(_row(to, n) for n, to in enumerate(nanp_numbers(3 * CHUNK_ROWS))).encode()
    api_log = Path(os.environ["SESPCL_STATE_DIR"], "logs", "api.log")
    log_size = api_log.stat().st_size
    await asyncio.to_thread(
        _raw_post,
        api_url,
        api_key,
        f"/v1/campaigns/{campaign}/calls",
        {"Content-Type": "application/x-ndjson", "Content-Length": str(len(rows))},
        rows[: len(rows) * 4 // 5],  # past two chunks: both were inserted, then the client left
        True,
    )
    deadline = time.monotonic() + 30
    while True:  # until the API says the client went away (its transaction is rolled back then)
        with api_log.open("rb") as lines:
            lines.seek(log_size)
            logged = [json.loads(line) for line in lines if line.startswith(b"{")]
        if any(e.get("path") == f"/v1/campaigns/{campaign}/calls" for e in logged):
            break
        assert time.monotonic() < deadline, "the API never noticed the upload was cut off"
        await asyncio.sleep(0.2)
    mine = [e["event"] for e in logged if e.get("path") == f"/v1/campaigns/{campaign}/calls"]
    assert mine == ["api.client_gone"], mine
    left = db.execute(
        "SELECT (SELECT count(*) FROM calls WHERE campaign_id = %(c)s) AS calls, "
        "(SELECT count(*) FROM campaign_audio WHERE campaign_id = %(c)s) AS audio",
        {"c": campaign},
    ).fetchone()
    assert left == {"calls": 0, "audio": 0}
    await api.post(f"/v1/campaigns/{campaign}/cancel")
