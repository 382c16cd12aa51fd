"""Prompts from segments on the real stack: a personal campaign's calls play every piece of
their message, in order, on both nodes (what Asterisk itself logs it plays); each piece is
rendered once for the whole campaign; GET /v1/campaigns/{id} counts the renders."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.conftest import nanp_numbers, wait_final

ROOT = Path(os.environ.get("SESPCL_ASTERISK_ROOT", "/var/cache/sespcl/asterisk-root"))
NODES = ("n1", "n2")
TEMPLATE = "Hello {{name}}, your code is {{code|digits}}. Your visit is on {{day|date}} at {{at|time}}."
NAMES = ("Margaret", "Olusegun Adeyemi", "Zoë", "Margaret", "Hiroshi Tanaka", "Siobhán", "Olusegun Adeyemi")
_PLAYING = re.compile(r"<(?P<channel>[^>]+)> Playing '(?P<path>[^']+)\.ulaw'")


def _node_cli(node: str, command: str) -> str:
    done = subprocess.run(
        ["chroot", str(ROOT), "asterisk", "-C", f"/etc/asterisk-{node}/asterisk.conf", "-rx", command],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    return done.stdout


@pytest.fixture
def playback_logs() -> Iterator[dict[str, Path]]:
    """A verbose log channel of its own on each node: Asterisk writes there each file it plays,
    with the channel playing it."""
    name = f"sespcl-test-playback-{uuid.uuid4().hex[:8]}"
    for node in NODES:
        _node_cli(node, f"logger add channel {name} verbose(3)")
    try:
        yield {node: ROOT / f"var/log/asterisk-{node}" / name for node in NODES}
    finally:
        for node in NODES:
            _node_cli(node, f"logger remove channel {name}")
            (ROOT / f"var/log/asterisk-{node}" / name).unlink(missing_ok=True)


def _played(logs: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    """The paths each channel played, by (node, channel), in order."""
    played: dict[tuple[str, str], list[str]] = {}
    for node, path in logs.items():
        for match in _PLAYING.finditer(path.read_text(errors="replace") if path.exists() else ""):
            played.setdefault((node, match["channel"]), []).append(match["path"])
    return played


async def _channel(db: psycopg.Connection[dict[str, Any]], call_id: uuid.UUID) -> dict[str, Any]:
    """The node and channel name of the call's attempt, once its events are recorded (they come
    in batches through the workers, after the final status)."""
    deadline = time.monotonic() + 15
    while True:
        found = db.execute(
            # ARI names the channel in ChannelName (Channel is its id), AMI in Channel.
            "SELECT a.node, coalesce(e.data->>'ChannelName', e.data->>'Channel') AS channel "
            "FROM call_attempts a JOIN call_events e ON e.call_id = a.call_id "
            "WHERE a.call_id = %s "
            "AND coalesce(e.data->>'ChannelName', e.data->>'Channel') LIKE 'PJSIP/%%' LIMIT 1",
            (call_id,),
        ).fetchone()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"no channel event for call {call_id}"
        await asyncio.sleep(0.2)


async def test_a_personal_campaign_plays_every_piece_in_order_on_both_nodes(
    api: httpx.AsyncClient, db: psycopg.Connection[dict[str, Any]], playback_logs: dict[str, Path]
) -> None:
    created = await api.post(
        "/v1/campaigns",
        json={
            "name": f"visits {uuid.uuid4().hex[:6]}",
            "defaults": {"tts": {"text": TEMPLATE}, "ring_timeout_s": 10},
        },
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["defaults"]["tts"]["mode"] == "segments"
    rows = [
        {
            "to": to,
            "name": name,
            "code": f"{(n * 7919) % 1_000_000:06d}",
            "day": f"2026-12-{10 + n:02d}",
            "at": f"{8 + n}:{n * 7:02d}",
        }
        for n, (to, name) in enumerate(zip(nanp_numbers(len(NAMES)), NAMES, strict=True))
    ]
    body = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    upload = await api.post(
        f"/v1/campaigns/{campaign['id']}/calls",
        content=body.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert upload.status_code == 202, upload.text
    assert upload.json()["accepted"] == len(rows)

    calls = db.execute(
        "SELECT id, segments, tts_text FROM calls WHERE campaign_id = %s ORDER BY created_at",
        (campaign["id"],),
    ).fetchall()
    finals = await asyncio.gather(*(wait_final(api, str(call["id"]), timeout=120) for call in calls))
    assert [f["status"] for f in finals] == ["completed"] * len(calls), finals

    paths = {
        r["hash"]: r["path"]
        for r in db.execute(
            "SELECT hash, path FROM audio_assets WHERE hash = ANY(%s)",
            (sorted({h for call in calls for h in call["segments"]}),),
        ).fetchall()
    }
    played = _played(playback_logs)
    nodes_used = set()
    for call in calls:
        channel = await _channel(db, call["id"])
        nodes_used.add(channel["node"])
        expected = [paths[h] for h in call["segments"]]
        assert played.get((channel["node"], channel["channel"])) == expected, call["tts_text"]
    assert nodes_used == set(NODES)  # both drivers (AMI on n1, ARI on n2) played them

    # Each piece once for the whole campaign: the shared words, each name once, the digits.
    pieces = {h for call in calls for h in call["segments"]}
    assert len(pieces) < sum(len(call["segments"]) for call in calls) / 2
    described = (await api.get(f"/v1/campaigns/{campaign['id']}")).json()
    assert described["renders"] == {"needed": len(pieces), "ready": len(pieces)}


async def test_a_row_whose_typed_value_cannot_be_said_is_rejected(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/campaigns",
        json={"name": "codes", "defaults": {"tts": {"text": "Your code is {{code|digits}}."}}},
    )
    assert created.status_code == 201, created.text
    to = nanp_numbers(2)
    upload = await api.post(
        f"/v1/campaigns/{created.json()['id']}/calls",
        content=f"to,code\n{to[0]},48 21\n{to[1]},48x1\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 202, upload.text
    report = upload.json()
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["line"] == 3 and report["errors"][0]["field"] == "code"
    await api.post(f"/v1/campaigns/{created.json()['id']}/cancel")


async def test_typed_values_need_an_english_voice(api: httpx.AsyncClient) -> None:
    refused = await api.post(
        "/v1/campaigns",
        json={"name": "codes", "defaults": {"tts": {"text": "Ihr Code ist {{code|digits}}.", "voice": "de"}}},
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("typed-values-need-english-voice", "defaults.tts.voice")
