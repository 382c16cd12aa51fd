"""Campaigns and bulk intake through the real stack: three formats, pause/resume/cancel,
limits, an upload cut off midway, keyset pages."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psycopg

from tests.integration.cli import carrier_trunk, sespcl
from tests.integration.conftest import nanp_numbers, new_campaign, wait_cancel_done, wait_final


async def _upload(api: httpx.AsyncClient, campaign: str, content: bytes, ctype: str) -> httpx.Response:
    return await api.post(f"/v1/campaigns/{campaign}/calls", content=content, headers={"Content-Type": ctype})


async def _all_calls(api: httpx.AsyncClient, campaign: str, limit: int = 100) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"campaign": campaign, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/v1/calls", params=params)).json()
        calls.extend(body["calls"])
        cursor = body["next_cursor"]
        if cursor is None:
            return calls


async def test_bulk_in_three_formats(api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]) -> None:
    campaign = (await new_campaign(api))["id"]
    n = nanp_numbers(9)
    array = json.dumps(
        [
            {"to": n[0], "name": "Ann", "day": "Monday"},
            {"to": "+1234", "name": "Bad", "day": "never"},
            {"to": n[1], "name": "Bob"},
            {"to": n[2], "name": "Cy", "day": "Tuesday", "ring_timeout_s": 12},
        ]
    ).encode()
    ndjson = "\n".join(
        [
            json.dumps({"to": n[3], "name": "Di", "day": "Monday"}),
            "{broken",
            json.dumps({"to": n[0], "name": "Ann", "day": "Monday"}),  # already in the campaign
            json.dumps({"to": n[4], "name": "Ed", "day": "Friday", "trunk": "nosuch"}),
            json.dumps({"to": n[5], "name": "Flo", "day": "Friday", "colour": "red"}),
        ]
    ).encode()
    csv = f"to,name,day\n{n[6]},Gus,Monday\n{n[7]},Hal\n{n[6]},Gus,Monday\nnot-a-number,Ivy,Sunday\n".encode()

    reports = []
    for content, ctype in ((array, "application/json"), (ndjson, "application/x-ndjson"), (csv, "text/csv")):
        response = await _upload(api, campaign, content, ctype)
        assert response.status_code == 202, response.text
        reports.append(response.json())
    assert [(r["accepted"], r["duplicates"], r["rejected"]) for r in reports] == [
        (2, 0, 2),
        (1, 1, 3),
        (1, 1, 2),
    ]
    assert [(e["line"], e["field"]) for e in reports[0]["errors"]] == [(2, "to"), (3, "day")]
    assert [(e["line"], e["field"]) for e in reports[1]["errors"]] == [(2, None), (4, "trunk"), (5, "colour")]
    assert [(e["line"], e["field"]) for e in reports[2]["errors"]] == [(3, None), (5, "to")]

    calls = await _all_calls(api, campaign)
    assert sorted(c["to"] for c in calls) == sorted([n[0], n[2], n[3], n[6]])
    texts = {c["to"]: c["tts"]["text"] for c in calls}
    assert texts[n[0]] == "Hello Ann, your appointment is on Monday."
    assert {c["to"]: c["ring_timeout_s"] for c in calls}[n[2]] == 12
    finals = [await wait_final(api, c["id"]) for c in calls]
    assert [c["status"] for c in finals] == ["completed"] * 4
    described = (await api.get(f"/v1/campaigns/{campaign}")).json()
    assert (
        described["counts"] == {"completed": 4} and described["total"] == 4 and described["progress"] == 1.0
    )
    # Messages from segments: one render per distinct piece, shared by the calls that say it
    # (Ann and Di share "Monday", every call "Hello"); the lone "." says nothing.
    pieces = db.execute(
        "SELECT count(*) AS said, array_agg(DISTINCT a.text) AS texts FROM calls c "
        "CROSS JOIN LATERAL unnest(c.segments) AS s(hash) JOIN audio_assets a ON a.hash = s.hash "
        "WHERE c.campaign_id = %s",
        (campaign,),
    ).fetchone()
    assert pieces is not None and pieces["said"] == 4 * 4
    assert sorted(pieces["texts"]) == sorted(
        ["Hello", "Ann", "Cy", "Di", "Gus", ", your appointment is on", "Monday", "Tuesday"]
    )


async def test_voice_bulk_creates_the_campaign(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    n = nanp_numbers(3)
    rows = "\n".join(json.dumps({"to": x, "first": "Sam"}) for x in n).encode()
    response = await api.post(
        "/voice/bulk",
        params={"text": "Hi {{first}}, service is restored.", "name": "restore"},
        content=rows,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 3 and response.headers["Location"] == f"/v1/campaigns/{body['campaign_id']}"
    campaign = (await api.get(f"/v1/campaigns/{body['campaign_id']}")).json()
    assert campaign["name"] == "restore" and campaign["total"] == 3
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anonymous:
        refused = await anonymous.post(
            "/voice/bulk",
            params={"text": "x"},
            content=rows,
            headers={"Content-Type": "application/x-ndjson"},
        )
    assert refused.status_code == 401
    # A refused body stores nothing, not even the campaign it would have created.
    name = f"refused {uuid.uuid4()}"
    malformed = await api.post(
        "/voice/bulk",
        params={"text": "Hi.", "name": name},
        content=b'{"to": "+14155550123"}',  # an object, not the array the type announces
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400, malformed.text
    left = db.execute("SELECT count(*) AS n FROM campaigns WHERE name = %s", (name,)).fetchone()
    assert left is not None and left["n"] == 0


async def test_pause_stops_dialing_and_resume_continues(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    campaign = (await new_campaign(api, cps=2))["id"]
    n = nanp_numbers(10)
    rows = "\n".join(json.dumps({"to": x, "name": "Pat", "day": "Monday"}) for x in n).encode()
    assert (await _upload(api, campaign, rows, "application/x-ndjson")).json()["accepted"] == 10

    def started() -> set[Any]:
        """The campaign's attempts. One claimed but not yet sent when a pause answers is taken
        back (removed, its call queued again): attempts may go, none may come."""
        return {
            r["id"]
            for r in db.execute(
                "SELECT a.id FROM call_attempts a JOIN calls c ON c.id = a.call_id WHERE c.campaign_id = %s",
                (campaign,),
            ).fetchall()
        }

    for _ in range(100):
        if len(started()) >= 2:
            break
        await asyncio.sleep(0.1)
    paused = await api.post(f"/v1/campaigns/{campaign}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    # A claim under way when the pause came finished first (the pause waited for it): its calls
    # are counted here. None starts after the pause has answered.
    before = started()
    await asyncio.sleep(3)
    dialed_while_paused = started()
    assert dialed_while_paused <= before, "a call was dialed after the pause had answered"
    assert len(dialed_while_paused) < 10
    resumed = await api.post(f"/v1/campaigns/{campaign}/resume")
    assert resumed.json()["status"] == "active"
    calls = await _all_calls(api, campaign)
    finals = [await wait_final(api, c["id"], timeout=60) for c in calls]
    assert [c["status"] for c in finals] == ["completed"] * 10
    assert len(started()) == 10


async def test_cancel_cancels_undialed_calls(api: httpx.AsyncClient) -> None:
    campaign = (await new_campaign(api))["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    rows = "\n".join(json.dumps({"to": x, "name": "Q", "day": "Monday"}) for x in nanp_numbers(5)).encode()
    assert (await _upload(api, campaign, rows, "application/x-ndjson")).json()["accepted"] == 5
    canceled = await api.post(f"/v1/campaigns/{campaign}/cancel")
    assert canceled.status_code == 200
    body = canceled.json()
    # The answer does not wait for the calls: they are canceled in the background.
    assert body["status"] == "canceled" and body["cancel"]["queued_left"] + body["canceled_calls"] == 5
    assert (await wait_cancel_done(api, campaign))["counts"] == {"canceled": 5}
    calls = await _all_calls(api, campaign)
    assert all(c["status"] == "canceled" and c["status_reason"] == "campaign canceled" for c in calls)
    for call in calls:  # the event log says so too, as for every other end
        events = (await api.get(f"/v1/calls/{call['id']}/events")).json()["events"]
        assert [e["data"] for e in events if e["type"] == "status"][-1] == {
            "status": "canceled",
            "reason": "campaign canceled",
        }
    again = await _upload(api, campaign, rows, "application/x-ndjson")
    assert again.status_code == 422 and again.json()["error"]["code"] == "campaign-canceled"
    resumed = await api.post(f"/v1/campaigns/{campaign}/resume")
    assert resumed.status_code == 409


def _raw_post(
    api_url: str, key: str, path: str, headers: dict[str, str], body: bytes, hang_up: bool
) -> bytes:
    """Speak HTTP by hand: promise a length the body never reaches; hang up, or read the reply."""
    url = urlparse(api_url)
    with socket.create_connection((url.hostname, url.port or 80), timeout=10) as sock:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {url.hostname}",
            f"Authorization: Bearer {key}",
            *(f"{k}: {v}" for k, v in headers.items()),
            "",
            "",
        ]
        sock.sendall("\r\n".join(head).encode() + body)
        if hang_up:
            time.sleep(0.5)
            return b""  # closing the socket cuts the upload off
        return sock.recv(65536)


async def test_upload_cut_off_midway_stores_nothing(
    api: httpx.AsyncClient, api_url: str, api_key: str
) -> None:
    campaign = (await new_campaign(api))["id"]
    await api.post(f"/v1/campaigns/{campaign}/pause")
    rows = "".join(
        json.dumps({"to": x, "name": "R", "day": "Monday"}) + "\n" for x in nanp_numbers(2000)
    ).encode()
    half = rows[: len(rows) // 2]
    api_log = Path(os.environ["SESPCL_STATE_DIR"], "logs", "api.log")
    log_size = api_log.stat().st_size
    await asyncio.to_thread(
        _raw_post,
        api_url,
        api_key,
        f"/v1/campaigns/{campaign}/calls",
        {"Content-Type": "application/x-ndjson", "Content-Length": str(len(rows))},
        half,
        True,
    )
    await asyncio.sleep(1.0)
    described = (await api.get(f"/v1/campaigns/{campaign}")).json()
    assert described["total"] == 0, "an upload cut off midway must leave nothing behind"
    with api_log.open("rb") as lines:
        lines.seek(log_size)
        logged = [json.loads(line) for line in lines if line.startswith(b"{")]
    mine = [e for e in logged if e.get("path") == f"/v1/campaigns/{campaign}/calls"]
    # The client's doing, not an error of ours: one line saying so, no traceback.
    assert [e["event"] for e in mine] == ["api.client_gone"], mine
    complete = await _upload(api, campaign, rows, "application/x-ndjson")
    assert complete.json()["accepted"] == 2000
    await api.post(f"/v1/campaigns/{campaign}/cancel")


async def test_body_above_the_limit_is_413(api: httpx.AsyncClient, api_url: str, api_key: str) -> None:
    campaign = (await new_campaign(api))["id"]
    reply = await asyncio.to_thread(
        _raw_post,
        api_url,
        api_key,
        f"/v1/campaigns/{campaign}/calls",
        {"Content-Type": "text/csv", "Content-Length": str(10 * 1024**3), "Connection": "close"},
        b"",
        False,
    )
    # the server answers before any body arrives: the promised length is over the limit
    assert b" 413 " in reply.split(b"\r\n", 1)[0], reply[:200]
    assert b"body-too-large" in reply
    assert (await api.get(f"/v1/campaigns/{campaign}")).json()["total"] == 0


async def test_wrong_media_type_is_415(api: httpx.AsyncClient) -> None:
    campaign = (await new_campaign(api))["id"]
    response = await _upload(api, campaign, b"to\n+14155550123\n", "text/plain")
    assert response.status_code == 415


async def test_keyset_pages_are_stable_under_inserts(api: httpx.AsyncClient) -> None:
    campaign = (await new_campaign(api))["id"]
    await api.post(f"/v1/campaigns/{campaign}/pause")
    n = nanp_numbers(30)
    first = "\n".join(json.dumps({"to": x, "name": "K", "day": "Monday"}) for x in n[:20]).encode()
    await _upload(api, campaign, first, "application/x-ndjson")
    page1 = (await api.get("/v1/calls", params={"campaign": campaign, "limit": "7"})).json()
    assert len(page1["calls"]) == 7 and page1["next_cursor"]
    more = "\n".join(json.dumps({"to": x, "name": "K", "day": "Monday"}) for x in n[20:]).encode()
    await _upload(api, campaign, more, "application/x-ndjson")
    rest: list[dict[str, Any]] = []
    cursor = page1["next_cursor"]
    while cursor:
        body = (
            await api.get("/v1/calls", params={"campaign": campaign, "limit": "7", "cursor": cursor})
        ).json()
        rest.extend(body["calls"])
        cursor = body["next_cursor"]
    seen = [c["to"] for c in page1["calls"] + rest]
    assert seen == n, "every call exactly once, in upload order, new ones at the end"
    bad = await api.get("/v1/calls", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    await api.post(f"/v1/campaigns/{campaign}/cancel")


async def test_bad_campaign_requests(api: httpx.AsyncClient) -> None:
    cases = [
        ({"name": "x", "defaults": {"tts": {"text": "Hi {{name}}"}, "trunk": "nosuch"}}, "defaults.trunk"),
        ({"name": "x", "defaults": {"tts": {"text": "Hi\u0007"}}}, "defaults.tts.text"),
        ({"name": "x", "defaults": {"tts": {"text": "Hi"}, "from": "12"}}, "defaults.from"),
        ({"name": "x", "defaults": {"tts": {"text": "Hi"}}, "cps": 0}, "cps"),
        ({"name": "x", "defaults": {"tts": {"text": "Hi"}}, "extra": 1}, "extra"),
    ]
    for body, field in cases:
        response = await api.post("/v1/campaigns", json=body)
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
    for key in ("ring_timeout_s", "cps"):
        response = await api.post(
            "/voice/bulk",
            params={"text": "Hi.", key: "abc"},
            content=b"to\n",
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == 422 and response.json()["error"]["field"] == key, response.text
    missing = await api.get(f"/v1/campaigns/{uuid.uuid4()}")
    assert missing.status_code == 404
    listed = (await api.get("/v1/campaigns", params={"limit": "500"})).json()
    assert "campaigns" in listed


async def test_a_big_campaign_does_not_starve_a_small_one(api: httpx.AsyncClient) -> None:
    """40 calls uploaded first, 4 a moment later, one trunk paced at 4 calls a second: the small
    campaign's calls go out among the first, not after the big one's."""
    with carrier_trunk("t-fair", "127.0.30.8", "answer"):
        updated = await asyncio.to_thread(sespcl, "trunks", "update", "t-fair", "--cps", "4")
        assert updated.returncode == 0, updated.stderr
        big = (await new_campaign(api, defaults={"trunk": "t-fair", "tts": {"text": "Big."}}))["id"]
        small = (await new_campaign(api, defaults={"trunk": "t-fair", "tts": {"text": "Small."}}))["id"]
        for campaign in (big, small):  # both held until both are loaded: the claim decides the order
            await api.post(f"/v1/campaigns/{campaign}/pause")
        rows_big = "\n".join(json.dumps({"to": x}) for x in nanp_numbers(40)).encode()
        rows_small = "\n".join(json.dumps({"to": x}) for x in nanp_numbers(4)).encode()
        assert (await _upload(api, big, rows_big, "application/x-ndjson")).json()["accepted"] == 40
        assert (await _upload(api, small, rows_small, "application/x-ndjson")).json()["accepted"] == 4
        for campaign in (big, small):
            await api.post(f"/v1/campaigns/{campaign}/resume")
        calls = [*await _all_calls(api, big), *await _all_calls(api, small)]
        finals = [await wait_final(api, c["id"], timeout=120) for c in calls]
        order = sorted(finals, key=lambda c: c["attempts"][0]["started_at"])
        small_positions = [i for i, c in enumerate(order) if c["id"] in {x["id"] for x in calls[40:]}]
        assert max(small_positions) < 12, f"small campaign dialed at positions {small_positions}"


async def test_uploads_beyond_the_limit_wait_then_get_503_and_never_starve_other_requests(
    api: httpx.AsyncClient,
) -> None:
    """SESPCL_MAX_UPLOADS (4 on the test stack) slow uploads hold their own connections; a fifth
    is refused with 503 and Retry-After once it waited its turn, while single calls and the
    campaign reads are served as usual; the four then finish and store everything."""
    campaign = (await new_campaign(api))["id"]
    await api.post(f"/v1/campaigns/{campaign}/pause")
    numbers = nanp_numbers(8)
    release = asyncio.Event()

    async def slow_body(number: str) -> AsyncIterator[bytes]:
        yield (json.dumps({"to": number, "name": "R", "day": "Monday"}) + "\n").encode()
        await release.wait()

    def upload(number: str) -> Awaitable[httpx.Response]:
        return api.post(
            f"/v1/campaigns/{campaign}/calls",
            content=slow_body(number),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=60,
        )

    holding = [asyncio.ensure_future(upload(n)) for n in numbers[:4]]
    await asyncio.sleep(1.0)
    try:
        started = time.monotonic()
        single = await api.post(
            "/v1/calls", json={"to": numbers[7], "tts": {"text": "Hi."}, "not_before": "2099-01-01T00:00:00Z"}
        )
        assert single.status_code == 202 and time.monotonic() - started < 5, single.text
        assert (await api.get(f"/v1/campaigns/{campaign}")).status_code == 200
        # A whole body: a client sends it all before it reads the answer.
        refused = await api.post(
            f"/v1/campaigns/{campaign}/calls",
            content=(json.dumps({"to": numbers[4], "name": "R", "day": "Monday"}) + "\n").encode(),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=60,
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "too-many-uploads"
        assert int(refused.headers["Retry-After"]) > 0
        await api.post(f"/v1/calls/{single.json()['id']}/cancel")
    finally:
        release.set()
    finished = await asyncio.gather(*holding)
    assert [r.status_code for r in finished] == [202] * 4, [r.text for r in finished]
    assert (await api.get(f"/v1/campaigns/{campaign}")).json()["total"] == 4
    assert (await upload(numbers[5])).status_code == 202, "a slot is free again"
    await api.post(f"/v1/campaigns/{campaign}/cancel")
