"""The do-not-call list, checked when a call is accepted and again just before it is dialed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import psycopg

from tests.integration.cli import sespcl
from tests.integration.conftest import HeldPrompt, call_body, wait_final

REASON = "number is on the do-not-call list"


def _fresh_number() -> str:
    return f"+1415{200 + uuid.uuid4().int % 800:03d}{uuid.uuid4().int % 10000:04d}"


def _status_events(db: psycopg.Connection[dict[str, Any]], call_id: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT data FROM call_events WHERE call_id = %s AND type = 'status'", (call_id,)
    ).fetchall()
    db.commit()
    return [r["data"] for r in rows]


async def test_blocked_at_acceptance(api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]) -> None:
    number = _fresh_number()
    assert sespcl("dnc", "add", number, "--reason", "asked").returncode == 0
    try:
        response = await api.post("/v1/calls", json=call_body(to=number))
        assert response.status_code == 202
        call = (await api.get(f"/v1/calls/{response.json()['id']}")).json()
        assert call["status"] == "canceled" and call["status_reason"] == REASON and call["attempts"] == []
        assert _status_events(db, call["id"]) == [{"status": "canceled", "reason": REASON}]
        listed = json.loads(sespcl("dnc", "list", "--json", "--limit", "1000000").stdout)
        assert {"number": number, "reason": "asked"}.items() <= next(
            r for r in listed if r["number"] == number
        ).items()
    finally:
        assert sespcl("dnc", "remove", number).returncode == 0


async def test_blocked_in_a_bulk_upload(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    blocked, allowed = _fresh_number(), _fresh_number()
    assert sespcl("dnc", "add", blocked).returncode == 0
    try:
        campaign = (
            await api.post("/v1/campaigns", json={"name": "dnc", "defaults": {"tts": {"text": "Hi."}}})
        ).json()
        # The blocked number twice in the upload, and again in a second upload: one call, one
        # status event.
        rows = (
            f"{json.dumps({'to': blocked})}\n{json.dumps({'to': allowed})}\n{json.dumps({'to': blocked})}\n"
        )
        for _ in range(2):
            report = await api.post(
                f"/v1/campaigns/{campaign['id']}/calls",
                content=rows.encode(),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert report.status_code == 202, report.text
        calls = (await api.get("/v1/calls", params={"campaign": campaign["id"]})).json()["calls"]
        by_number = {c["to"]: c for c in calls}
        assert by_number[blocked]["status"] == "canceled" and by_number[blocked]["status_reason"] == REASON
        assert len(calls) == 2
        assert _status_events(db, by_number[blocked]["id"]) == [{"status": "canceled", "reason": REASON}]
        assert (await wait_final(api, by_number[allowed]["id"]))["status"] == "completed"
    finally:
        sespcl("dnc", "remove", blocked)


async def test_checked_again_just_before_dialing(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]]
) -> None:
    """Accepted while allowed, listed while its prompt is still rendering: never dialed."""
    number = _fresh_number()
    held = HeldPrompt(db, f"Listed while waiting {uuid.uuid4().hex[:6]}.")
    created = await api.post("/v1/calls", json=held.body(to=number))
    assert created.json()["status"] == "queued"
    assert sespcl("dnc", "add", number).returncode == 0
    try:
        held.release()
        call = await wait_final(api, created.json()["id"], timeout=20)
        assert call["status"] == "canceled" and call["status_reason"] == REASON and call["attempts"] == []
    finally:
        sespcl("dnc", "remove", number)


def test_dnc_cli_refuses_bad_numbers() -> None:
    result = sespcl("dnc", "add", "12345")
    assert result.returncode == 1 and "invalid NUMBER" in result.stderr


def test_dnc_import_reads_spreadsheet_files(tmp_path: Any) -> None:
    """A byte-order mark (Excel's "CSV UTF-8") or a first line that is a number without its "+"
    must not hide the first number: each is imported or refused, never skipped in silence."""
    first, second = _fresh_number(), _fresh_number()
    bom = tmp_path / "bom.csv"
    bom.write_bytes(("\ufeff" + f"{first},moved\n{second},asked\n").encode("utf-8"))
    result = sespcl("dnc", "import", str(bom))
    assert result.returncode == 0, result.stderr
    listed = sespcl("dnc", "list", "--json")
    numbers = {row["number"] for row in json.loads(listed.stdout)}
    assert {first, second} <= numbers
    sespcl("dnc", "remove", first)
    sespcl("dnc", "remove", second)
    unprefixed = tmp_path / "plain.txt"
    unprefixed.write_text(f"{first[1:]}\n{second}\n")
    refused = sespcl("dnc", "import", str(unprefixed))
    assert refused.returncode == 1 and ":1:" in refused.stderr and "nothing imported" in refused.stderr
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("number\n+14155550123,caf\xe9\n".encode("latin-1"))
    refused = sespcl("dnc", "import", str(latin1))
    assert refused.returncode == 1 and "not UTF-8" in refused.stderr and "Traceback" not in refused.stderr
