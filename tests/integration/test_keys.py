"""API keys against the running API, PostgreSQL and Redis: made with `sespcl keys add`, held to
their scopes, rate and destinations, revoked everywhere within 5 s; who made each call and
campaign; /health's status for anyone and its checks for a metrics:read key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.cli import sespcl

Db = psycopg.Connection[dict[str, Any]]
LATER = "2099-01-01T00:00:00Z"
"""Calls held until then are stored and never dialed; each test cancels its own."""

SAN_FRANCISCO = "+14152345678"
VANCOUVER = "+16042345678"
BERLIN = "+4930123456"
PARIS = "+33123456789"
US_PREMIUM = "+19002345678"
UK_0871 = "+448712345678"
FR_SHARED_COST = "+33810123456"


@pytest.fixture
def make_key() -> Iterator[Callable[..., tuple[str, str]]]:
    """`sespcl keys add` a key of a fresh name; every key made is revoked afterwards."""
    made: list[str] = []

    def make(*options: str) -> tuple[str, str]:
        name = f"test-{uuid.uuid4().hex[:10]}"
        result = sespcl("keys", "add", name, *options, "--json")
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert set(body) == {"name", "key", "scopes", "rate_per_s"} and body["name"] == name
        made.append(name)
        return name, str(body["key"])

    yield make
    for name in made:
        sespcl("keys", "revoke", name)


@asynccontextmanager
async def client(api_url: str, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=15) as http:
        yield http


def _call(to: str) -> dict[str, Any]:
    return {"to": to, "tts": {"text": "Keys test: never dialed."}, "not_before": LATER}


async def test_a_key_made_with_the_cli_places_a_call_that_names_it(
    api_url: str, api: httpx.AsyncClient, db: Db, make_key: Callable[..., tuple[str, str]]
) -> None:
    name, key = make_key("--scopes", "calls:read,calls:write")
    assert re.fullmatch(r"sespcl_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", key)
    async with client(api_url, key) as http:
        created = await http.post("/v1/calls", json=_call(SAN_FRANCISCO))
        assert created.status_code == 202, created.text
        call_id = created.json()["id"]
        assert created.json()["created_by"] == name
        read = await http.get(f"/v1/calls/{call_id}")
        assert read.status_code == 200 and read.json()["created_by"] == name
        assert (await http.post(f"/v1/calls/{call_id}/cancel")).status_code == 200
    by_bootstrap = await api.post("/v1/calls", json=_call(SAN_FRANCISCO))
    assert by_bootstrap.status_code == 202 and by_bootstrap.json()["created_by"] == "bootstrap"
    await api.post(f"/v1/calls/{by_bootstrap.json()['id']}/cancel")
    row = db.execute("SELECT created_by FROM calls WHERE id = %s", (call_id,)).fetchone()
    assert row == {"created_by": name}
    # Only the key's SHA-256 is stored; the list shows neither, and says when it was used.
    stored = db.execute("SELECT key_hash FROM api_keys WHERE name = %s", (name,)).fetchone()
    assert stored is not None and bytes(stored["key_hash"]) == hashlib.sha256(key.encode()).digest()
    listing = sespcl("keys", "list", "--json")
    assert listing.returncode == 0 and key not in listing.stdout
    mine = next(k for k in json.loads(listing.stdout) if k["name"] == name)
    assert mine["status"] == "active" and mine["last_used_at"] is not None
    assert key not in sespcl("keys", "list").stdout


async def test_a_key_without_the_scope_is_403(api_url: str, make_key: Callable[..., tuple[str, str]]) -> None:
    _, reader = make_key("--scopes", "calls:read")
    async with client(api_url, reader) as http:
        assert (await http.get("/v1/calls", params={"limit": "1"})).status_code == 200
        refused = [
            await http.post("/v1/calls", json=_call(SAN_FRANCISCO)),
            await http.get("/v1/campaigns"),
            await http.get("/api/metrics"),
            await http.get("/metrics"),
            await http.post("/voice/bulk?text=hi", content=b"to\n", headers={"Content-Type": "text/csv"}),
        ]
    for response in refused:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "forbidden-scope" and error["field"] == "Authorization"


async def test_a_revoked_key_is_refused_within_5_s(
    api_url: str, make_key: Callable[..., tuple[str, str]]
) -> None:
    name, key = make_key("--scopes", "calls:read")
    async with client(api_url, key) as http:
        assert (await http.get("/v1/calls", params={"limit": "1"})).status_code == 200  # cached now
        result = sespcl("keys", "revoke", name)
        assert result.returncode == 0 and "revoked" in result.stdout, result.stderr
        revoked_at = time.monotonic()
        while True:
            response = await http.get("/v1/calls", params={"limit": "1"})
            if response.status_code == 401:
                break
            assert response.status_code == 200, response.text
            assert time.monotonic() - revoked_at < 5, "the revoked key still works after 5 s"
            await asyncio.sleep(0.1)
    assert response.json()["error"]["code"] == "unauthorized"
    assert time.monotonic() - revoked_at < 5


async def test_over_its_rate_a_key_gets_429_with_retry_after(
    api_url: str, make_key: Callable[..., tuple[str, str]]
) -> None:
    _, key = make_key("--scopes", "calls:read", "--rate-per-s", "2")
    async with client(api_url, key) as http:
        burst = await asyncio.gather(*(http.get("/v1/calls", params={"limit": "1"}) for _ in range(12)))
        statuses = sorted(r.status_code for r in burst)
        # 2/s with a burst of one second's worth: two at once, and at most one more if the
        # twelve spread over half a second.
        assert 2 <= statuses.count(200) <= 3, statuses
        assert set(statuses) == {200, 429}, statuses
        limited = next(r for r in burst if r.status_code == 429)
        assert limited.json()["error"]["code"] == "rate-limited"
        wait = int(limited.headers["Retry-After"])
        assert wait >= 1
        await asyncio.sleep(wait)  # what a client does: wait what it was told
        assert (await http.get("/v1/calls", params={"limit": "1"})).status_code == 200


async def test_premium_numbers_and_other_countries_are_refused_for_a_call(
    api_url: str, api: httpx.AsyncClient, make_key: Callable[..., tuple[str, str]]
) -> None:
    _, north_america = make_key("--scopes", "calls:write", "--allow-countries", "US,CA")
    _, premium = make_key("--scopes", "calls:write", "--allow-premium")
    created: list[str] = []
    try:
        async with client(api_url, north_america) as http:
            for number in (US_PREMIUM, UK_0871, BERLIN, PARIS):
                response = await http.post("/v1/calls", json=_call(number))
                assert response.status_code == 422, (number, response.text)
                error = response.json()["error"]
                assert (error["code"], error["field"]) == ("destination-not-allowed", "to"), error
                assert number in error["message"]
            allowed = await http.post("/v1/calls", json=_call(VANCOUVER))
            assert allowed.status_code == 202, allowed.text
            created.append(allowed.json()["id"])
        async with client(api_url, premium) as http:
            allowed = await http.post("/v1/calls", json=_call(US_PREMIUM))
            assert allowed.status_code == 202, allowed.text
            created.append(allowed.json()["id"])
        # The bootstrap key too, unless SESPCL_API_KEY_ALLOW_PREMIUM says otherwise.
        refused = await api.post("/v1/calls", json=_call(FR_SHARED_COST))
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "destination-not-allowed"
    finally:
        for call_id in created:
            await api.post(f"/v1/calls/{call_id}/cancel")


async def test_bulk_rows_to_refused_destinations_are_rejected_and_the_others_stored(
    api_url: str, api: httpx.AsyncClient, make_key: Callable[..., tuple[str, str]]
) -> None:
    name, key = make_key(
        "--scopes", "campaigns:read,campaigns:write,calls:read", "--allow-countries", "US,CA"
    )
    async with client(api_url, key) as http:
        made = await http.post(
            "/v1/campaigns", json={"name": f"keys {name}", "defaults": {"tts": {"text": "Hi {{name}}"}}}
        )
        assert made.status_code == 201, made.text
        campaign = made.json()
        assert campaign["created_by"] == name
        try:
            assert (await http.post(f"/v1/campaigns/{campaign['id']}/pause")).status_code == 200
            rows = [SAN_FRANCISCO, US_PREMIUM, BERLIN, VANCOUVER, UK_0871, FR_SHARED_COST]
            body = "to,name\n" + "".join(f"{to},Ann\n" for to in rows)
            upload = await http.post(
                f"/v1/campaigns/{campaign['id']}/calls",
                content=body.encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert upload.status_code == 202, upload.text
            report = upload.json()
            assert (report["accepted"], report["rejected"]) == (2, 4), report
            assert [(e["line"], e["field"], e["code"]) for e in report["errors"]] == [
                (line, "to", "destination-not-allowed") for line in (3, 4, 6, 7)
            ]
            listed = await http.get("/v1/calls", params={"campaign": campaign["id"]})
            calls = listed.json()["calls"]
            assert sorted(c["to"] for c in calls) == sorted([SAN_FRANCISCO, VANCOUVER])
            assert {c["created_by"] for c in calls} == {name}
            read = await http.get(f"/v1/campaigns/{campaign['id']}")
            assert read.json()["created_by"] == name and read.json()["total"] == 2
        finally:
            await http.post(f"/v1/campaigns/{campaign['id']}/cancel")


async def test_health_shows_its_checks_only_to_a_metrics_key(
    api_url: str, make_key: Callable[..., tuple[str, str]]
) -> None:
    _, metrics = make_key("--scopes", "metrics:read")
    _, calls = make_key("--scopes", "calls:read")
    async with client(api_url, None) as anonymous:
        status_only = await anonymous.get("/health")
    assert status_only.status_code == 200 and status_only.json() == {"status": "ok"}
    async with client(api_url, metrics) as http:
        detailed = await http.get("/health")
    assert detailed.status_code == 200
    body = detailed.json()
    assert body["status"] == "ok" and body["checks"]["postgres"]["ok"] and body["checks"]["asterisk"]["ok"]
    assert "checked_at" in body
    async with client(api_url, calls) as http:
        assert (await http.get("/health")).status_code == 403


def _health_runs(metrics_text: str) -> float:
    found = re.search(r"^sespcl_health_checks_total (\S+)$", metrics_text, re.MULTILINE)
    assert found is not None, "no sespcl_health_checks_total in /metrics"
    return float(found.group(1))


async def test_a_crowd_of_health_probes_runs_the_checks_about_once(
    api_url: str, make_key: Callable[..., tuple[str, str]]
) -> None:
    """Twenty probes at once all answer quickly, and the API ran its checks (a database
    connection, a connection to every node) at most twice: once, or twice if the crowd
    straddled the end of the one second a result is kept."""
    _, metrics = make_key("--scopes", "metrics:read", "--rate-per-s", "100")
    async with client(api_url, metrics) as http:
        before = _health_runs((await http.get("/metrics")).text)
    async with client(api_url, None) as anonymous:

        async def probe() -> tuple[int, float]:
            started = time.monotonic()
            response = await anonymous.get("/health")
            return response.status_code, time.monotonic() - started

        answers = await asyncio.gather(*(probe() for _ in range(20)))
    assert {status for status, _ in answers} == {200}
    assert max(took for _, took in answers) < 3.0, answers
    async with client(api_url, metrics) as http:
        after = _health_runs((await http.get("/metrics")).text)
    assert after - before <= 2, (before, after)
