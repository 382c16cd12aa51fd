"""Request bodies no well-behaved client sends, against the running API: each is one clear 4xx
in the API's error shape (or read as it should be), never a server error or a stalled service,
and nothing of a refused request is stored.

The idle cut is tested with the bound the API runs with: set SESPCL_UPLOAD_IDLE_S for the suite
as for the API (a few seconds keeps the run short); unset, both use the product default.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import httpx
import psycopg

from orchestrator.config import Settings
from tests.integration.conftest import call_body, nanp_numbers, new_campaign
from tests.integration.raw_http import RawRequest, Reply

Db = psycopg.Connection[dict[str, Any]]


def _setting(name: str) -> float:
    """The API's setting as the suite's environment gives it, else the product default."""
    raw = os.environ.get(f"SESPCL_{name.upper()}")
    return float(raw) if raw else float(Settings.model_fields[name].default)


IDLE_S = _setting("upload_idle_s")
MAX_LINE = int(_setting("max_line_bytes"))
MAX_BODY = int(_setting("max_body_bytes"))
BOM = b"\xef\xbb\xbf"
PREFIXES = [b" ", b"\n", b"\r\n \t", BOM, BOM + b" \r\n"]
CSV, NDJSON, JSON = "text/csv", "application/x-ndjson", "application/json"


def _rows(numbers: list[str]) -> list[dict[str, str]]:
    return [{"to": n, "name": "Zoë", "day": "Monday"} for n in numbers]


def _encode(rows: list[dict[str, Any]], ctype: str) -> bytes:
    if ctype == JSON:
        return json.dumps(rows, indent=1, ensure_ascii=False).encode()
    if ctype == NDJSON:
        return "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows).encode()
    return ("to,name,day\r\n" + "".join(f"{r['to']},{r['name']},{r['day']}\r\n" for r in rows)).encode()


async def _paused_campaign(api: httpx.AsyncClient) -> str:
    campaign = str((await new_campaign(api))["id"])
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    return campaign


async def _total(api: httpx.AsyncClient, campaign: str) -> int:
    response = await api.get(f"/v1/campaigns/{campaign}")
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def _upload(api: httpx.AsyncClient, campaign: str, body: bytes, ctype: str) -> httpx.Response:
    return await api.post(f"/v1/campaigns/{campaign}/calls", content=body, headers={"Content-Type": ctype})


async def _serving(api_url: str) -> None:
    """The API answers /health within a one-second client timeout."""
    async with httpx.AsyncClient(base_url=api_url, timeout=1.0) as client:
        response = await client.get("/health")
    assert response.status_code == 200, response.text


def _head(api_key: str, ctype: str, length: int | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": ctype}
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    return headers


def _assert_refused(reply: Reply | httpx.Response, status: int, code: str, says: str = "") -> None:
    body = reply.body if isinstance(reply, Reply) else reply.content
    status_code = reply.status if isinstance(reply, Reply) else reply.status_code
    assert status_code == status, body[:300]
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "field"} and error["code"] == code, error
    assert says in error["message"], error


async def _pieces(first: bytes, piece: bytes, total: int) -> AsyncIterator[bytes]:
    yield first
    for _ in range(total // len(piece)):
        yield piece


async def test_white_space_and_a_byte_order_mark_before_any_json_body_are_read(
    api: httpx.AsyncClient, api_url: str, db: Db
) -> None:
    campaign = await _paused_campaign(api)
    numbers = iter(nanp_numbers(2 * 3 * len(PREFIXES)))
    for prefix in PREFIXES:
        for ctype in (JSON, NDJSON, CSV):
            rows = _rows([next(numbers), next(numbers)])
            response = await _upload(api, campaign, prefix + _encode(rows, ctype), ctype)
            assert response.status_code == 202, (prefix, ctype, response.text)
            assert response.json()["accepted"] == 2 and response.json()["rejected"] == 0, response.text
    assert await _total(api, campaign) == 2 * 3 * len(PREFIXES)
    await api.post(f"/v1/campaigns/{campaign}/cancel")

    marker = uuid.uuid4().hex
    for prefix in PREFIXES:
        body = call_body(to=nanp_numbers(1)[0], not_before="2099-01-01T00:00:00Z", metadata={"probe": marker})
        created = await api.post(
            "/v1/calls", content=prefix + json.dumps(body).encode(), headers={"Content-Type": JSON}
        )
        assert created.status_code == 202, (prefix, created.text)
        await api.post(f"/v1/calls/{created.json()['id']}/cancel")
        campaign_body = {"name": f"hostile {marker}", "defaults": {"tts": {"text": "Hi {{name}}."}}}
        made = await api.post(
            "/v1/campaigns",
            content=prefix + json.dumps(campaign_body).encode(),
            headers={"Content-Type": JSON},
        )
        assert made.status_code == 201, (prefix, made.text)
        await api.post(f"/v1/campaigns/{made.json()['id']}/cancel")
        bulk = await api.post(
            "/voice/bulk",
            params={"text": "Hi {{name}}, see you {{day}}.", "name": f"hostile {marker}"},
            content=prefix + _encode(_rows(nanp_numbers(1)), JSON),
            headers={"Content-Type": JSON},
        )
        assert bulk.status_code == 202 and bulk.json()["accepted"] == 1, (prefix, bulk.text)
        await api.post(f"/v1/campaigns/{bulk.json()['campaign_id']}/cancel")
    row = db.execute("SELECT count(*) AS n FROM calls WHERE metadata->>'probe' = %s", (marker,)).fetchone()
    assert row is not None and row["n"] == len(PREFIXES)
    await _serving(api_url)


async def test_white_space_in_a_tcp_write_of_its_own_is_waited_past(
    api: httpx.AsyncClient, api_url: str, api_key: str
) -> None:
    """The reader gets the white space alone first, and must wait for what follows it."""
    campaign = await _paused_campaign(api)
    numbers = iter(nanp_numbers(3 * len(PREFIXES)))
    path = f"/v1/campaigns/{campaign}/calls"
    for prefix in PREFIXES:
        for ctype in (JSON, NDJSON, CSV):
            body = _encode(_rows([next(numbers)]), ctype)
            async with RawRequest(
                api_url, "POST", path, _head(api_key, ctype, len(prefix + body))
            ) as request:
                assert await request.send(prefix)
                await asyncio.sleep(0.1)  # the client's own pause between its two writes
                assert await request.send(body)
                reply = await request.reply(timeout=10)
            assert reply.status == 202 and json.loads(reply.body)["accepted"] == 1, (prefix, ctype, reply)
    assert await _total(api, campaign) == 3 * len(PREFIXES)
    await api.post(f"/v1/campaigns/{campaign}/cancel")
    await _serving(api_url)


async def test_a_row_longer_than_max_line_bytes_is_422_naming_it_and_nothing_is_stored(
    api: httpx.AsyncClient, api_url: str
) -> None:
    long_row = {"to": nanp_numbers(1)[0], "name": "x" * (MAX_LINE + 10), "day": "Monday"}
    for ctype, code, what in ((NDJSON, "line-too-long", "line 3"), (CSV, "line-too-long", "line 4")):
        campaign = await _paused_campaign(api)
        rows = _rows(nanp_numbers(2)) + [long_row] + _rows(nanp_numbers(1))
        _assert_refused(await _upload(api, campaign, _encode(rows, ctype), ctype), 422, code, what)
        assert await _total(api, campaign) == 0
        await _serving(api_url)
    campaign = await _paused_campaign(api)
    rows = _rows(nanp_numbers(2)) + [long_row] + _rows(nanp_numbers(1))
    _assert_refused(
        await _upload(api, campaign, _encode(rows, JSON), JSON), 422, "element-too-long", "element 3"
    )
    assert await _total(api, campaign) == 0
    await _serving(api_url)


async def test_a_64_mib_line_is_refused_before_the_body_has_all_arrived(
    api: httpx.AsyncClient, api_url: str, api_key: str
) -> None:
    """The answer comes while most of the promised 64 MiB has not been sent at all."""
    campaign = await _paused_campaign(api)
    total = 64 * 1024 * 1024
    path = f"/v1/campaigns/{campaign}/calls"
    async with RawRequest(api_url, "POST", path, _head(api_key, NDJSON, total)) as request:
        assert await request.send(b'{"to": "+14152012345", "name": "' + b"y" * (4 * MAX_LINE))
        reply = await request.reply(timeout=10)
    _assert_refused(reply, 422, "line-too-long", "line 1")
    assert await _total(api, campaign) == 0
    await _serving(api_url)


async def test_deep_nesting_is_a_4xx_never_a_500(api: httpx.AsyncClient, api_url: str, db: Db) -> None:
    for path in ("/v1/calls", "/v1/campaigns"):
        for body in (b"[" * 60_000, b'{"a": ' * 10_000, b" " + b"[" * 33 + b"]" * 33):
            response = await api.post(path, content=body, headers={"Content-Type": JSON})
            _assert_refused(response, 400, "malformed-json", "nested deeper than 32 levels")
    nested_metadata = call_body(metadata={"a": json.loads("[" * 40 + "]" * 40)})
    response = await api.post("/v1/calls", json=nested_metadata)
    _assert_refused(response, 400, "malformed-json", "nested deeper")

    campaign = await _paused_campaign(api)
    deep = b" [" + b"[" * 100_000 + b"]" * 100_000 + b"]"
    _assert_refused(await _upload(api, campaign, deep, JSON), 400, "malformed-body", "nested deeper")
    assert await _total(api, campaign) == 0
    name = f"deep {uuid.uuid4().hex}"
    refused = await api.post(
        "/voice/bulk", params={"text": "Hi.", "name": name}, content=deep, headers={"Content-Type": JSON}
    )
    _assert_refused(refused, 400, "malformed-body", "nested deeper")
    left = db.execute("SELECT count(*) AS n FROM campaigns WHERE name = %s", (name,)).fetchone()
    assert left is not None and left["n"] == 0, "a refused /voice/bulk leaves no campaign"

    # An NDJSON line is a row: the deep one is reported, the others go in.
    first, last = _rows(nanp_numbers(2))
    ndjson = _encode([first], NDJSON) + b"[" * 60_000 + b"\n" + _encode([last], NDJSON)
    report = await _upload(api, campaign, ndjson, NDJSON)
    assert report.status_code == 202, report.text
    assert (report.json()["accepted"], report.json()["rejected"]) == (2, 1)
    assert (
        report.json()["errors"][0]["line"] == 2 and "nested deeper" in report.json()["errors"][0]["message"]
    )
    await api.post(f"/v1/campaigns/{campaign}/cancel")
    await _serving(api_url)


async def test_a_body_in_two_tcp_writes_is_read_whole(
    api: httpx.AsyncClient, api_url: str, api_key: str
) -> None:
    marker = uuid.uuid4().hex
    call = json.dumps(call_body(not_before="2099-01-01T00:00:00Z", metadata={"probe": marker})).encode()
    campaign = json.dumps({"name": f"split {marker}", "defaults": {"tts": {"text": "Hi."}}}).encode()
    for path, body, status in (("/v1/calls", call, 202), ("/v1/campaigns", campaign, 201)):
        async with RawRequest(api_url, "POST", path, _head(api_key, JSON, len(body))) as request:
            assert await request.send(body[:20])
            await asyncio.sleep(0.3)  # the client's own pause between its two writes
            assert await request.send(body[20:])
            reply = await request.reply(timeout=10)
        assert reply.status == status, reply.body
        created = json.loads(reply.body)
        assert created.get("metadata", {"probe": marker}) == {"probe": marker}
        kind = "calls" if path == "/v1/calls" else "campaigns"
        await api.post(f"/v1/{kind}/{created['id']}/cancel")
    await _serving(api_url)


async def test_a_chunked_body_past_max_body_bytes_is_413(api_url: str, api_key: str) -> None:
    piece = b"x" * 16 * 1024
    async with RawRequest(api_url, "POST", "/v1/calls", _head(api_key, JSON, None)) as request:
        for _ in range(MAX_BODY // len(piece) + 2):
            if not await request.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n"):
                break
        reply = await request.reply(timeout=10)
    _assert_refused(reply, 413, "body-too-large")
    await _serving(api_url)


async def test_a_body_that_stops_arriving_is_cut_with_408_and_nothing_is_stored(
    api: httpx.AsyncClient, api_url: str, api_key: str, db: Db
) -> None:
    """A bulk upload, /voice/bulk and a single call each send part of their body, then nothing."""
    campaign = await _paused_campaign(api)
    marker = uuid.uuid4().hex
    rows = _encode(_rows(nanp_numbers(3)), NDJSON)
    call = json.dumps(call_body(metadata={"probe": marker})).encode()
    stalls = [
        (f"/v1/campaigns/{campaign}/calls", NDJSON, rows),
        (f"/voice/bulk?text=Hi.&name=idle%20{marker}", NDJSON, rows),
        ("/v1/calls", JSON, call),
    ]

    async def stall(path: str, ctype: str, body: bytes) -> tuple[Reply, float]:
        async with RawRequest(api_url, "POST", path, _head(api_key, ctype, len(body) + 100)) as request:
            assert await request.send(body)
            silent_since = time.monotonic()
            reply = await request.reply(timeout=IDLE_S + 15)
            return reply, time.monotonic() - silent_since

    for reply, waited in await asyncio.gather(*(stall(*s) for s in stalls)):
        _assert_refused(reply, 408, "upload-idle", f"nothing arrived for {IDLE_S:g} s")
        assert reply.headers.get("connection", "").lower() == "close"
        assert IDLE_S - 0.5 <= waited < IDLE_S + 10, waited
    assert await _total(api, campaign) == 0
    left = db.execute("SELECT count(*) AS n FROM campaigns WHERE name = %s", (f"idle {marker}",)).fetchone()
    calls = db.execute("SELECT count(*) AS n FROM calls WHERE metadata->>'probe' = %s", (marker,)).fetchone()
    assert left is not None and calls is not None and (left["n"], calls["n"]) == (0, 0)
    await _serving(api_url)


async def test_405_names_the_allowed_methods(api: httpx.AsyncClient) -> None:
    for method, path, allowed in (
        ("DELETE", "/v1/calls", {"GET", "HEAD", "POST"}),
        ("PUT", "/health", {"GET", "HEAD"}),
        ("GET", f"/v1/campaigns/{uuid.uuid4()}/calls", {"POST"}),
    ):
        response = await api.request(method, path)
        _assert_refused(response, 405, "method-not-allowed", method)
        assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed, response.headers


async def test_health_answers_within_a_second_while_four_hostile_uploads_run(
    api: httpx.AsyncClient, api_url: str, api_key: str
) -> None:
    """All at once: a slow drip, a 64 MiB line its client sends whole whatever the answer, and two
    chunked bodies that go on until the polls are done, one of lines of 60,000 "[", one of white
    space only. /health keeps answering; each upload gets its own answer; none stores a call."""
    campaigns = [await _paused_campaign(api) for _ in range(4)]
    stop = asyncio.Event()

    async def drip() -> None:
        row = _encode(_rows(nanp_numbers(1)), NDJSON)
        path = f"/v1/campaigns/{campaigns[0]}/calls"
        async with RawRequest(api_url, "POST", path, _head(api_key, NDJSON, 1 << 20)) as request:
            while not stop.is_set():
                assert await request.send(row[request.sent % len(row) :][:1])
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(0.1, IDLE_S / 4))
        # Hung up midway: the upload is rolled back.

    async def until_stopped(piece: bytes) -> AsyncIterator[bytes]:
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent = 0
        while not stop.is_set() and sent < 256 << 20:
            yield chunk
            sent += len(piece)
            await asyncio.sleep(0.002)  # a fast client, not one that takes both cores
        yield b"0\r\n\r\n"

    async def flood(campaign: str, ctype: str, length: int | None, pieces: AsyncIterator[bytes]) -> Reply:
        path = f"/v1/campaigns/{campaign}/calls"
        async with RawRequest(api_url, "POST", path, _head(api_key, ctype, length)) as request:
            if length is None:
                return await request.stream(pieces, timeout=60)
            async for piece in pieces:  # sent whole, as a client that does not read answers early
                if not await request.send(piece):
                    break
            return await request.reply(timeout=60)

    dripping = asyncio.ensure_future(drip())
    line = asyncio.ensure_future(
        flood(campaigns[1], NDJSON, 8 + (64 << 20), _pieces(b'{"to": "', b"z" * 65536, 64 << 20))
    )
    endless = [
        asyncio.ensure_future(flood(campaigns[2], NDJSON, None, until_stopped(b"[" * 60_000 + b"\n"))),
        asyncio.ensure_future(flood(campaigns[3], JSON, None, until_stopped(b" \r\n\t" * 16384))),
    ]
    try:
        for _ in range(5):
            await _serving(api_url)
            await asyncio.sleep(0.2)  # spread the polls over the uploads' run
        assert not any(task.done() for task in (dripping, *endless)), "an upload ended before the polls did"
    finally:
        stop.set()
        await dripping
    _assert_refused(await line, 422, "line-too-long", "line 1")
    deep, blank = await asyncio.gather(*endless)
    assert deep.status == 202, deep.body
    report = json.loads(deep.body)
    assert report["accepted"] == 0 and report["rejected"] > 0
    assert "nested deeper" in report["errors"][0]["message"]
    _assert_refused(blank, 400, "malformed-body", "must be a JSON array")
    for campaign in campaigns:
        assert await _total(api, campaign) == 0
        await api.post(f"/v1/campaigns/{campaign}/cancel")
    await _serving(api_url)
