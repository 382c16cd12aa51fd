"""Idempotency-Key on the bulk paths through the real stack: POST /v1/campaigns,
/v1/campaigns/{id}/calls and /voice/bulk sent again (one after the other, and at once) store
once and answer as the first time; another body is refused; a key in use is said to be; a
refused upload leaves its key free for the corrected one."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg

from tests.integration.conftest import CAMPAIGN_TEMPLATE, nanp_numbers, new_campaign

FIRST_NAMES = [
    "Amélie",
    "Oluwaseun",
    "Zoë",
    "Thị Lan",
    "Søren",
    "Aoife",
    "Mateus",
    "Priyanka",
    "Dmitri",
    "Li Wei",
]
LAST_NAMES = ["Poulain", "Adebayo", "O'Connor", "Nguyễn", "Kierkegaard", "Ní Bhriain", "Gonçalves", "Iyer"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
NDJSON = "application/x-ndjson"


def _rows(count: int) -> list[dict[str, str]]:
    """Personal rows: a different name for each number."""
    first, last = len(FIRST_NAMES), len(LAST_NAMES)
    return [
        {"to": to, "name": f"{FIRST_NAMES[i % first]} {LAST_NAMES[i // first % last]}", "day": DAYS[i % 5]}
        for i, to in enumerate(nanp_numbers(count))
    ]


def _ndjson(rows: list[dict[str, str]]) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()


def _key(label: str) -> str:
    return f"{label}-{uuid.uuid4()}"


async def _post(
    api: httpx.AsyncClient, path: str, content: Any, ctype: str, key: str, **params: str
) -> httpx.Response:
    return await api.post(
        path,
        content=content,
        params=params or None,
        headers={"Content-Type": ctype, "Idempotency-Key": key},
        timeout=120,
    )


def _one_answer_the_rest_replays(responses: list[httpx.Response], status: int) -> httpx.Response:
    """Of requests sent at once with one key: one did the work, each other replayed its answer
    or was told the key was in use."""
    done = [r for r in responses if r.status_code == status and "Idempotent-Replayed" not in r.headers]
    assert len(done) == 1, [(r.status_code, r.headers.get("Idempotent-Replayed"), r.text) for r in responses]
    for other in responses:
        if other is done[0]:
            continue
        if other.status_code == 409:
            assert other.json()["error"]["code"] == "idempotency-key-in-use" and other.headers["Retry-After"]
        else:
            assert (other.status_code, other.json()) == (status, done[0].json())
            assert other.headers["Idempotent-Replayed"] == "true"
    return done[0]


def _calls_in(db: psycopg.Connection[dict[str, Any]], campaign: str) -> int:
    row = db.execute("SELECT count(*) AS n FROM calls WHERE campaign_id = %s", (campaign,)).fetchone()
    assert row is not None
    return int(row["n"])


async def test_a_campaign_created_at_once_with_one_key_is_created_once(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    name = f"Dental reminders {uuid.uuid4().hex[:8]}"
    body = json.dumps({"name": name, "defaults": {"tts": {"text": CAMPAIGN_TEMPLATE}, "ring_timeout_s": 10}})
    key = _key("crm-sync")
    responses = await asyncio.gather(
        *(_post(api, "/v1/campaigns", body, "application/json", key) for _ in range(6))
    )
    first = _one_answer_the_rest_replays(list(responses), 201)
    again = await _post(api, "/v1/campaigns", body, "application/json", key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/campaigns/{first.json()['id']}"
    count = db.execute("SELECT count(*) AS n FROM campaigns WHERE name = %s", (name,)).fetchone()
    assert count is not None and count["n"] == 1

    other = await _post(api, "/v1/campaigns", body.replace("Dental", "Optician"), "application/json", key)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency-key-reused")


async def test_an_upload_sent_again_and_at_once_is_stored_once(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    campaign = (await new_campaign(api))["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200  # stored, not dialed
    rows = _rows(3000)
    body, key, path = _ndjson(rows), _key("upload"), f"/v1/campaigns/{campaign}/calls"
    responses = await asyncio.gather(*(_post(api, path, body, NDJSON, key) for _ in range(4)))
    first = _one_answer_the_rest_replays(list(responses), 202)
    assert first.json()["accepted"] == len(rows)
    again = await _post(api, path, body, NDJSON, key)
    assert (again.status_code, again.json()) == (202, first.json())
    assert _calls_in(db, campaign) == len(rows)

    changed = _ndjson([*rows[:-1], {**rows[-1], "name": "Someone Else"}])
    other = await _post(api, path, changed, NDJSON, key)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency-key-reused")
    assert _calls_in(db, campaign) == len(rows)
    assert (await api.post(f"/v1/campaigns/{campaign}/cancel")).status_code == 200


async def test_voice_bulk_sent_again_and_at_once_makes_one_campaign(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    name = f"Flu shots {uuid.uuid4().hex[:8]}"
    rows = _rows(20)
    csv = ("to,name,day\n" + "".join(f'{r["to"]},"{r["name"]}",{r["day"]}\n' for r in rows)).encode()
    key = _key("bulk")
    query = {
        "name": name,
        "text": "Hi {{name}}, your flu shot is on {{day}}.",
        "ring_timeout_s": "10",
        "cps": "2",
    }
    responses = await asyncio.gather(
        *(_post(api, "/voice/bulk", csv, "text/csv", key, **query) for _ in range(3))
    )
    first = _one_answer_the_rest_replays(list(responses), 202)
    campaign = first.json()["campaign_id"]
    try:
        assert first.json()["accepted"] == len(rows)
        again = await _post(api, "/voice/bulk", csv, "text/csv", key, **query)
        assert (again.status_code, again.json()) == (202, first.json())
        count = db.execute("SELECT count(*) AS n FROM campaigns WHERE name = %s", (name,)).fetchone()
        assert count is not None and count["n"] == 1
        assert _calls_in(db, campaign) == len(rows)
        other = await _post(api, "/voice/bulk", csv, "text/csv", key, **{**query, "cps": "3"})
        assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency-key-reused")
    finally:
        await api.post(f"/v1/campaigns/{campaign}/cancel")


async def test_a_key_is_in_use_while_its_upload_streams(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    campaign = (await new_campaign(api))["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    body, key, path = _ndjson(_rows(500)), _key("slow"), f"/v1/campaigns/{campaign}/calls"
    resume = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:1000]
        await resume.wait()
        yield body[1000:]

    first = asyncio.create_task(_post(api, path, slowly(), NDJSON, key))
    deadline = asyncio.get_running_loop().time() + 10
    while db.execute("SELECT 1 FROM idempotent_requests WHERE key = %s", (key,)).fetchone() is None:
        assert asyncio.get_running_loop().time() < deadline, "the first upload never claimed its key"
        await asyncio.sleep(0.05)
    busy = await _post(api, path, body, NDJSON, key)
    assert (busy.status_code, busy.json()["error"]["code"]) == (409, "idempotency-key-in-use")
    assert int(busy.headers["Retry-After"]) >= 1
    resume.set()
    answered = await first
    assert answered.status_code == 202 and answered.json()["accepted"] == 500
    replay = await _post(api, path, body, NDJSON, key)
    assert (replay.status_code, replay.json()) == (202, answered.json())
    assert _calls_in(db, campaign) == 500
    assert (await api.post(f"/v1/campaigns/{campaign}/cancel")).status_code == 200


async def test_a_refused_upload_leaves_its_key_for_the_corrected_one(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    campaign = (await new_campaign(api))["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    rows = _rows(40)
    whole = json.dumps(rows, ensure_ascii=False).encode()
    key, path = _key("nightly"), f"/v1/campaigns/{campaign}/calls"
    cut = await _post(api, path, whole[:-200], "application/json", key)
    assert (cut.status_code, cut.json()["error"]["code"]) == (400, "malformed-body")
    assert db.execute("SELECT 1 FROM idempotent_requests WHERE key = %s", (key,)).fetchone() is None
    corrected = await _post(api, path, whole, "application/json", key)
    assert corrected.status_code == 202 and corrected.json()["accepted"] == len(rows)
    stored = db.execute(
        "SELECT answer_status, answered_at IS NOT NULL AS answered FROM idempotent_requests WHERE key = %s",
        (key,),
    ).fetchone()
    assert stored == {"answer_status": 202, "answered": True}
    assert _calls_in(db, campaign) == len(rows)
    assert (await api.post(f"/v1/campaigns/{campaign}/cancel")).status_code == 200


async def test_a_malformed_key_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/campaigns",
        json={"name": "never", "defaults": {"tts": {"text": CAMPAIGN_TEMPLATE}}},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid-idempotency-key")
