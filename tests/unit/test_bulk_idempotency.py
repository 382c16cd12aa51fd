"""Idempotency-Key on POST /v1/campaigns, /v1/campaigns/{id}/calls and /voice/bulk, through the
real handlers and services over in-memory stores: a replay gets the first answer and stores
nothing, another body is refused, a key in use is said to be, a refusal frees the key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import pytest
from aiohttp.test_utils import make_mocked_request

from orchestrator.api.access import PRINCIPAL
from orchestrator.api.idempotency import REPLAYED_HEADER, request_digest
from orchestrator.domain.errors import StoreUnavailable
from orchestrator.domain.keys import Principal, Scope
from orchestrator.services.idempotency import Answer, IdempotentRequests
from tests.unit.fakes import eventually
from tests.unit.idempotency_fakes import MemoryIdempotency
from tests.unit.two_way_fakes import KEY, Api, two_way_api

CAMPAIGN: dict[str, Any] = {
    "name": "Cleaning reminders, week 50",
    "defaults": {"tts": {"text": "Hello {{name}}, your cleaning is on {{day}} at Bayview Dental."}},
}
PEOPLE = [
    ("+14152350117", "Amélie Poulain", "Monday"),
    ("+14152350231", "Oluwaseun Adebayo", "Tuesday"),
    ("+14152350348", "Zoë O'Connor-Nakamura", "Wednesday"),
    ("+14152350452", "Nguyễn Thị Lan", "Thursday"),
]
ROWS_NDJSON = "\n".join(
    json.dumps({"to": to, "name": name, "day": day}, ensure_ascii=False) for to, name, day in PEOPLE
)
ROWS_CSV = "to,name,day\n" + "".join(f'{to},"{name}",{day}\n' for to, name, day in PEOPLE)
BULK_QUERY = urlencode({"name": "Flu shots, Bayview", "text": "Hi {{name}}, your flu shot is {{day}}."})


async def _campaign(api: Api) -> str:
    status, campaign = await api.post("/v1/campaigns", CAMPAIGN)
    assert status == 201, campaign
    return str(campaign["id"])


async def _post(api: Api, path: str, data: Any, content_type: str, key: str) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": content_type, "Idempotency-Key": key}
    response = await api.client.post(path, data=data, headers=headers)
    return response.status, await response.json(), response.headers


async def test_a_campaign_created_with_a_key_is_created_once() -> None:
    async with two_way_api() as api:
        body = json.dumps(CAMPAIGN)
        first = await _post(api, "/v1/campaigns", body, "application/json", "crm-sync-2026-12-07-a")
        again = await _post(api, "/v1/campaigns", body, "application/json", "crm-sync-2026-12-07-a")
        assert first[0] == again[0] == 201
        assert first[1] == again[1] and first[2]["Location"] == again[2]["Location"]
        assert again[2][REPLAYED_HEADER] == "true" and REPLAYED_HEADER not in first[2]
        assert len(api.campaigns.created) == 1

        other = dict(CAMPAIGN, name="Cleaning reminders, week 51")
        status, refused = await api.post("/v1/campaigns", other, key="crm-sync-2026-12-07-a")
        assert (status, refused["error"]["code"]) == (409, "idempotency-key-reused")
        assert refused["error"]["field"] == "Idempotency-Key"
        assert len(api.campaigns.created) == 1


@pytest.mark.parametrize(
    ("rows", "content_type"), [(ROWS_NDJSON, "application/x-ndjson"), (ROWS_CSV, "text/csv")]
)
async def test_an_upload_sent_twice_with_its_key_is_stored_once(rows: str, content_type: str) -> None:
    async with two_way_api() as api:
        path = f"/v1/campaigns/{await _campaign(api)}/calls"
        first = await api.post(path, rows, content_type, key="upload-7f3a")
        again = await api.post(path, rows, content_type, key="upload-7f3a")
        assert first == again and first[0] == 202 and first[1]["accepted"] == len(PEOPLE)
        assert len(api.campaigns.intakes) == 1

        changed = rows.replace("Amélie Poulain", "Amelie Poulain")
        status, refused = await api.post(path, changed, content_type, key="upload-7f3a")
        assert (status, refused["error"]["code"]) == (409, "idempotency-key-reused")
        assert len(api.campaigns.intakes) == 1


async def test_the_same_key_on_another_campaign_is_another_request() -> None:
    async with two_way_api() as api:
        first, second = await _campaign(api), await _campaign(api)
        assert (
            await api.post(f"/v1/campaigns/{first}/calls", ROWS_NDJSON, "application/x-ndjson", key="k-1")
        )[0] == 202
        status, refused = await api.post(
            f"/v1/campaigns/{second}/calls", ROWS_NDJSON, "application/x-ndjson", key="k-1"
        )
        assert (status, refused["error"]["code"]) == (409, "idempotency-key-reused")
        assert len(api.campaigns.intakes) == 1


async def test_voice_bulk_sent_twice_makes_one_campaign() -> None:
    async with two_way_api() as api:
        path = f"/voice/bulk?{BULK_QUERY}"
        first = await _post(api, path, ROWS_NDJSON, "application/x-ndjson", "retry-after-timeout")
        again = await _post(api, path, ROWS_NDJSON, "application/x-ndjson", "retry-after-timeout")
        assert first[0] == again[0] == 202 and first[1] == again[1]
        assert first[1]["accepted"] == len(PEOPLE) and first[2]["Location"] == again[2]["Location"]
        assert len(api.campaigns.created) == 1 and len(api.campaigns.intakes) == 1

        other_text = "/voice/bulk?" + urlencode({"name": "Flu shots, Bayview", "text": "Hi {{name}}."})
        status, refused = await api.post(
            other_text, ROWS_NDJSON, "application/x-ndjson", key="retry-after-timeout"
        )
        assert (status, refused["error"]["code"]) == (409, "idempotency-key-reused")
        assert len(api.campaigns.created) == 1


async def test_a_body_in_other_chunks_is_the_same_body() -> None:
    """The hash covers the raw bytes as they stream, however the client cut them."""
    rows = "\n".join([ROWS_NDJSON] * 2000)  # ~300 kB: many reads

    async def in_small_pieces() -> AsyncIterator[bytes]:
        raw = rows.encode()
        for start in range(0, len(raw), 7_919):
            yield raw[start : start + 7_919]

    async with two_way_api() as api:
        path = f"/v1/campaigns/{await _campaign(api)}/calls"
        first = await api.post(path, rows, "application/x-ndjson", key="big-upload")
        again = await _post(api, path, in_small_pieces(), "application/x-ndjson", "big-upload")
        assert first[0] == again[0] == 202 and first[1] == again[1]
        assert len(api.campaigns.intakes) == 1


async def test_a_key_in_use_is_refused_until_its_first_request_answers() -> None:
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        head, tail = ROWS_NDJSON.encode().split(b"\n", 1)
        yield head + b"\n"
        await release.wait()
        yield tail

    async with two_way_api() as api:
        path = f"/v1/campaigns/{await _campaign(api)}/calls"
        first = asyncio.create_task(_post(api, path, slow_body(), "application/x-ndjson", "slow-one"))
        await eventually(lambda: api.idempotency.running("slow-one"))
        for content_type, body in (("application/x-ndjson", ROWS_NDJSON), ("text/csv", ROWS_CSV)):
            status, busy, headers = await _post(api, path, body, content_type, "slow-one")
            assert (status, busy["error"]["code"]) == (409, "idempotency-key-in-use")
            assert headers["Retry-After"] == "5"
        release.set()
        status, report, _ = await first
        assert status == 202 and report["accepted"] == len(PEOPLE)
        assert await api.post(path, ROWS_NDJSON, "application/x-ndjson", key="slow-one") == (202, report)
        assert len(api.campaigns.intakes) == 1


async def test_a_refused_upload_leaves_its_key_free_for_the_corrected_one() -> None:
    rows = [{"to": to, "name": name, "day": day} for to, name, day in PEOPLE]
    cut_off = json.dumps(rows, ensure_ascii=False)[:-40]  # the array never closes
    async with two_way_api() as api:
        path = f"/v1/campaigns/{await _campaign(api)}/calls"
        status, refused = await api.post(path, cut_off, key="nightly-batch")
        assert (status, refused["error"]["code"]) == (400, "malformed-body")
        assert "nightly-batch" not in api.idempotency.keys
        status, report = await api.post(path, rows, key="nightly-batch")
        assert status == 202 and report["accepted"] == len(PEOPLE)
        assert await api.post(path, rows, key="nightly-batch") == (202, report)


async def test_a_refused_campaign_or_bulk_leaves_its_key_free() -> None:
    async with two_way_api() as api:
        bad = {"name": "Reminders", "defaults": {"tts": {"text": "Hello {{name}}", "voice": "xx-yy"}}}
        status, refused = await api.post("/v1/campaigns", bad, key="campaign-once")
        assert (status, refused["error"]["code"]) == (422, "unknown-voice"), refused
        status, created = await api.post("/v1/campaigns", CAMPAIGN, key="campaign-once")
        assert status == 201 and len(api.campaigns.created) == 1

        rows = [{"to": to, "name": name, "day": day} for to, name, day in PEOPLE]
        path = f"/voice/bulk?{BULK_QUERY}"
        status, refused = await api.post(path, json.dumps(rows)[:-40], key="bulk-once")
        assert (status, refused["error"]["code"]) == (400, "malformed-body")
        status, report = await api.post(path, rows, key="bulk-once")
        assert status == 202 and report["accepted"] == len(PEOPLE)
        assert await api.post(path, rows, key="bulk-once") == (202, report)
        assert [c.name for c in api.campaigns.created] == [CAMPAIGN["name"], "Flu shots, Bayview"] * 1 + [
            "Flu shots, Bayview"
        ]  # the refused upload's campaign was made (then discarded), the corrected one's once


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "soft\u00adhyphen"])
@pytest.mark.parametrize("path", ["/v1/campaigns", "/voice/bulk?" + BULK_QUERY, "/v1/campaigns/{id}/calls"])
async def test_a_malformed_key_is_refused_before_anything_is_stored(key: str, path: str) -> None:
    async with two_way_api() as api:
        path = path.replace("{id}", await _campaign(api))
        created = len(api.campaigns.created)
        body, content_type = (json.dumps(CAMPAIGN), "application/json")
        if "calls" in path or "bulk" in path:
            body, content_type = ROWS_NDJSON, "application/x-ndjson"
        response = await api.client.post(
            path,
            data=body,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": content_type, "Idempotency-Key": key},
        )
        refused = await response.json()
        assert (response.status, refused["error"]["code"]) == (400, "invalid-idempotency-key")
        assert len(api.campaigns.created) == created and not api.campaigns.intakes
        assert api.idempotency.claims == 0


async def _refused_work() -> Answer:
    raise RuntimeError("the database went away mid-upload")


async def test_a_held_key_is_freed_by_a_failure_or_a_refusal_and_kept_by_a_success() -> None:
    store = MemoryIdempotency()
    requests = IdempotentRequests(store, heartbeat_s=0.001)
    claim = await requests.claim("k")
    assert isinstance(claim.holder, UUID)
    with pytest.raises(RuntimeError):
        await requests.hold("k", claim.holder, _refused_work, lambda: "never asked")
    assert "k" not in store.keys

    async def unprocessable() -> Answer:
        return Answer(422, {"error": {"code": "invalid-field"}})

    claim = await requests.claim("k")
    assert claim.holder is not None
    await requests.hold("k", claim.holder, unprocessable, lambda: "h")
    assert "k" not in store.keys

    async def accepted_slowly() -> Answer:
        await eventually(lambda: store.keys["k"].touches >= 2)  # the heartbeat keeps the claim fresh
        return Answer(202, {"accepted": 1})

    claim = await requests.claim("k")
    assert claim.holder is not None
    await requests.hold("k", claim.holder, accepted_slowly, lambda: "h")
    replay = await requests.claim("k")
    assert (replay.answer, replay.request_hash, replay.holder) == (Answer(202, {"accepted": 1}), "h", None)


def test_the_request_hash_covers_the_keys_owner_the_path_the_query_and_the_media_type() -> None:
    """Another API key sending the same key and body is refused (reused), never handed the
    first key's answer."""

    def digest(who: str, path: str, content_type: str = "text/csv") -> str:
        request = make_mocked_request("POST", path, headers={"Content-Type": content_type})
        request[PRINCIPAL] = Principal(who, frozenset({Scope.CAMPAIGNS_WRITE}), None)
        hashed = request_digest(request)
        hashed.update(ROWS_CSV.encode())
        return hashed.hexdigest()

    same = digest("crm-sync", f"/voice/bulk?{BULK_QUERY}")
    assert same == digest("crm-sync", f"/voice/bulk?{BULK_QUERY}")
    assert (
        len(
            {
                same,
                digest("billing", f"/voice/bulk?{BULK_QUERY}"),
                digest("crm-sync", f"/voice/bulk?{BULK_QUERY}&cps=2"),
                digest("crm-sync", f"/voice/bulk?{BULK_QUERY}", "application/x-ndjson"),
                digest("crm-sync", "/v1/campaigns/5d0c8a52-1d1e-4a43-9a0e-6c9b1f0e2a77/calls"),
            }
        )
        == 5
    )


class AnswerLost(MemoryIdempotency):
    async def answer(self, key: str, holder: UUID, request_hash: str, answer: Answer) -> None:
        raise StoreUnavailable("the database went away after the upload's commit")


async def test_an_answer_the_store_cannot_keep_still_reaches_the_client() -> None:
    store = AnswerLost()
    requests = IdempotentRequests(store)
    claim = await requests.claim("k")
    assert claim.holder is not None

    async def accepted() -> Answer:
        return Answer(202, {"accepted": 4})

    assert await requests.hold("k", claim.holder, accepted, lambda: "h") == Answer(202, {"accepted": 4})
    assert store.running("k")  # in use until it goes stale: never free at once for a second upload
