"""Two-way requests through the real API: what a call or a campaign asks (gather, replies,
machine detection, voicemail, a dialplan context, a status callback) is stored, shown back as
asked, and its words rendered by the workers before the call may be dialed. The calls here are
held (not_before far ahead, or a paused campaign) and canceled at the end: none is dialed.

Their callbacks name only events a call never dialed cannot have (digits, hook), so canceling
them delivers nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from orchestrator.domain.audio import SpeechRequest
from tests.integration.conftest import nanp_numbers

HELD = "2099-01-01T09:00:00Z"
CALLBACK = {"url": "https://hooks.example.com/sespcl-tests", "events": ["digits", "hook"]}


def _key(text: str, voice: str = "en-us") -> str:
    return SpeechRequest(text=text, voice=voice).key()


async def _wait_ready(db: psycopg.Connection[dict[str, Any]], hashes: list[str], timeout: float = 30) -> None:
    """The workers render each asset; a failed one fails the test at once."""
    deadline = time.monotonic() + timeout
    while True:
        rows = db.execute(
            "SELECT hash, status, error FROM audio_assets WHERE hash = ANY(%s)", (hashes,)
        ).fetchall()
        failed = [r for r in rows if r["status"] == "failed"]
        assert not failed, failed
        if len(rows) == len(set(hashes)) and all(r["status"] == "ready" for r in rows):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"audio not ready after {timeout} s: {rows}")
        await asyncio.sleep(0.2)


async def test_a_reminder_with_replies_is_stored_shown_and_its_replies_rendered(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tag = uuid.uuid4().hex[:8]  # words of their own: their renders are this test's
    confirmed, goodbye = (
        f"Thank you, appointment {tag} is confirmed.",
        f"You will not be called again, {tag}.",
    )
    body: dict[str, Any] = {
        "to": nanp_numbers(1)[0],
        "tts": {"text": f"Hello, Bayview Dental reminds you of appointment {tag}. Press 1 to confirm."},
        "not_before": HELD,
        "gather": {"num_digits": 1, "timeout_s": 6, "retries": 2},
        "on_digits": {
            "1": {"tts": {"text": confirmed, "voice": "en-us"}},
            "9": {"action": "dnc", "tts": {"text": goodbye}},
        },
        "machine_detection": "enable",
        "amd": {"greeting_ms": 2000},
        "status_callback": CALLBACK,
    }
    created = await api.post("/v1/calls", json=body, headers={"Idempotency-Key": f"two-way-{tag}"})
    assert created.status_code == 202, created.text
    call = created.json()
    try:
        shown = (await api.get(f"/v1/calls/{call['id']}")).json()
        assert shown["gather"] == {"num_digits": 1, "timeout_s": 6, "finish_on_key": "#", "retries": 2}
        assert shown["on_digits"] == {
            "1": {"tts": {"text": confirmed, "voice": "en-us"}, "action": None},
            "9": {"tts": {"text": goodbye, "voice": "en-us"}, "action": "dnc"},
        }
        assert (shown["machine_detection"], shown["amd"]["greeting_ms"]) == ("enable", 2000)
        assert shown["status_callback"] == {"url": CALLBACK["url"], "events": ["digits", "hook"]}
        assert (shown["digits"], shown["answered_by"], shown["hooks"]) == (None, None, {})
        assert (shown["voicemail"], shown["dialplan"]) == (None, None)

        # The same body and key again: the same call; its replies reordered still are.
        reordered = body | {"on_digits": dict(reversed(list(body["on_digits"].items())))}
        again = await api.post("/v1/calls", json=reordered, headers={"Idempotency-Key": f"two-way-{tag}"})
        assert (again.status_code, again.json()["id"]) == (200, call["id"])

        stored = db.execute(
            "SELECT extra_audio, interaction, status_callback FROM calls WHERE id = %s", (call["id"],)
        ).fetchone()
        assert stored is not None
        assert sorted(stored["extra_audio"]) == sorted([_key(confirmed), _key(goodbye)])
        assert stored["interaction"]["on_digits"]["9"]["action"] == "dnc"
        assert stored["status_callback"] == {"url": CALLBACK["url"], "events": ["digits", "hook"]}
        await _wait_ready(db, stored["extra_audio"])
    finally:
        await api.post(f"/v1/calls/{call['id']}/cancel")


async def test_a_voicemail_call_and_hostile_two_way_bodies(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    message = f"This is Northside Power, notice {tag}: service on Elm Street is off tonight from midnight."
    base: dict[str, Any] = {
        "to": nanp_numbers(1)[0],
        "tts": {"text": f"Northside Power, notice {tag}."},
        "not_before": HELD,
    }
    created = await api.post(
        "/v1/calls",
        json=base | {"machine_detection": "detect_message_end", "voicemail": {"tts": {"text": message}}},
    )
    assert created.status_code == 202, created.text
    call = created.json()
    try:
        assert call["voicemail"] == {"tts": {"text": message, "voice": "en-us"}}
        await _wait_ready(db, [_key(message)])
        url, context = "status_callback.url", "dialplan.context"
        hostile: list[tuple[dict[str, Any], str, str]] = [
            ({"status_callback": {"url": "http://127.0.0.1:5000/v1/calls"}}, url, "callback-url-refused"),
            ({"status_callback": {"url": "http://169.254.169.254/latest/meta-data"}}, url,
             "callback-url-refused"),
            ({"status_callback": {"url": "file:///etc/passwd"}}, url, "callback-url-refused"),
            ({"dialplan": {"context": "sespcl-outbound"}}, context, "dialplan-context-refused"),
            ({"dialplan": {"context": "sespcl-custom-x;Hangup"}}, context, "dialplan-context-refused"),
            ({"on_digits": {"1": {"action": "dnc"}}}, "on_digits", "on-digits-without-gather"),
            ({"gather": {"num_digits": 1}, "on_digits": {"1": {"action": "rm -rf"}}}, "on_digits.1.action",
             "invalid-field"),
            ({"voicemail": {"tts": {"text": "Call us."}}}, "voicemail", "voicemail-without-message-end"),
        ]  # fmt: skip
        for fields, field, code in hostile:
            refused = await api.post("/v1/calls", json=base | fields)
            error = refused.json()["error"]
            assert (refused.status_code, error["field"], error["code"]) == (422, field, code), refused.text
    finally:
        await api.post(f"/v1/calls/{call['id']}/cancel")


async def test_a_campaigns_two_way_defaults_reach_its_rows_and_rows_replace_them(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    tag = uuid.uuid4().hex[:8]
    see_you, own_reply = f"See you then, {tag}.", f"Thank you {tag}, we will call again."
    defaults = {
        "tts": {"text": "Hello {{name}}, your cleaning is on {{day}}. Press 1 to confirm."},
        "ring_timeout_s": 10,
        "gather": {"num_digits": 1},
        "on_digits": {"1": {"tts": {"text": see_you}}, "9": {"action": "dnc"}},
        "machine_detection": "enable",
        "status_callback": CALLBACK,
    }
    created = await api.post("/v1/campaigns", json={"name": f"two-way {tag}", "defaults": defaults})
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["defaults"]["on_digits"]["9"] == {"tts": None, "action": "dnc"}
    assert (await api.post(f"/v1/campaigns/{campaign['id']}/pause")).status_code == 200
    try:
        n = nanp_numbers(4)
        rows = [
            {"to": n[0], "name": "Ada", "day": "Monday"},
            {"to": n[1], "name": "Grace", "day": "Tuesday", "machine_detection": None,
             "on_digits": {"1": {"tts": {"text": own_reply}}}},
            {"to": n[2], "name": "Ken", "day": "Friday", "gather": None, "on_digits": None,
             "dialplan": {"context": "sespcl-custom-survey"}},
            {"to": n[3], "name": "Linus", "day": "Friday", "status_callback": {"url": "http://10.1.2.3/"}},
        ]  # fmt: skip
        upload = await api.post(
            f"/v1/campaigns/{campaign['id']}/calls",
            content="\n".join(json.dumps(r) for r in rows).encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert upload.status_code == 202, upload.text
        report = upload.json()
        assert (report["accepted"], report["rejected"]) == (3, 1)
        assert (report["errors"][0]["field"], report["errors"][0]["code"]) == (
            "status_callback.url",
            "callback-url-refused",
        )
        listed = (await api.get("/v1/calls", params={"campaign": campaign["id"]})).json()["calls"]
        by_to = {c["to"]: c for c in listed}
        assert by_to[n[0]]["on_digits"]["1"]["tts"]["text"] == see_you
        assert (
            by_to[n[0]]["machine_detection"] == "enable"
            and by_to[n[0]]["status_callback"] == campaign["defaults"]["status_callback"]
        )
        assert by_to[n[1]]["machine_detection"] is None
        assert by_to[n[1]]["on_digits"] == {
            "1": {"tts": {"text": own_reply, "voice": "en-us"}, "action": None}
        }
        assert (
            by_to[n[2]]["dialplan"] == {"context": "sespcl-custom-survey"} and by_to[n[2]]["gather"] is None
        )
        stored = db.execute(
            "SELECT to_number, extra_audio FROM calls WHERE campaign_id = %s", (campaign["id"],)
        ).fetchall()
        extra = {r["to_number"]: r["extra_audio"] for r in stored}
        assert extra == {n[0]: [_key(see_you)], n[1]: [_key(own_reply)], n[2]: None}
        await _wait_ready(db, [_key(see_you), _key(own_reply)])
    finally:
        await api.post(f"/v1/campaigns/{campaign['id']}/cancel")
