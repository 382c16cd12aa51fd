"""`sespcl audio prune` on the real PostgreSQL: it never deletes audio a queued or live call needs
(its prompt or its extra audio), deletes an old unneeded prompt with its file, keeps renders in
flight, and a call accepted while a prune runs still finds its audio.

Scoped to this test's own assets (unique words, old dates) and a temporary audio directory: the
prune's candidates are narrowed to them, so the stack's and the other tests' audio is untouched.
Its calls name a trunk that does not exist, so no dispatcher dials them; they end canceled.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from orchestrator.audio_files import AudioDirectory
from orchestrator.domain.audio import SpeechRequest, audio_file_name
from orchestrator.persistence.audio import AudioPruneStore
from orchestrator.persistence.calls import insert_assets
from orchestrator.services.audio_retention import AudioPruner
from tests.integration.cli import sespcl

pytestmark = pytest.mark.integration

DB = psycopg.Connection[dict[str, Any]]
NO_TRUNK = "prune-test-no-trunk"
DAY = timedelta(days=1)


class OwnAssets(AudioPruneStore):
    """The real store, its candidates narrowed to this test's hashes."""

    def __init__(self, url: str, hashes: list[str]) -> None:
        super().__init__(url, "test-audio-prune")
        self.hashes = hashes

    async def candidates(self, older_than: timedelta, after: str, limit: int) -> list[str]:
        found = await super().candidates(older_than, after, limit=1_000_000)
        return [h for h in found if h in self.hashes][:limit]


def _words(what: str) -> SpeechRequest:
    return SpeechRequest(text=f"Hello Margarethe, {what}, reference {uuid.uuid4().hex[:10]}.", voice="en-us")


def _asset(db: DB, audio_dir: Path, what: str, status: str = "ready", age_days: int = 30) -> str:
    """An asset rendered `age_days` ago, with its file when ready."""
    request = _words(what)
    key = request.key()
    db.execute(
        "INSERT INTO audio_assets (hash, engine, voice, text, status, path, duration_ms, size_bytes, "
        "created_at, rendered_at) VALUES (%s, 'espeak-ng', 'en-us', %s, %s, %s, 2000, 16000, "
        "now() - %s, CASE WHEN %s = 'ready' THEN now() - %s END)",
        (key, request.text, status, str(audio_dir / key), age_days * DAY, status, age_days * DAY),
    )
    if status == "ready":
        old = time.time() - age_days * 86400
        file = audio_dir / audio_file_name(key)
        file.write_bytes(b"\xff" * 16000)
        os.utime(file, (old, old))
    return key


def _call(db: DB, audio_hash: str, status: str = "queued", extra: list[str] | None = None) -> uuid.UUID:
    call_id = uuid.uuid4()
    db.execute(
        "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s, "
        "extra_audio, status) VALUES (%s, '+14152350187', %s, 'Hello Margarethe.', 'en-us', %s, 30, %s, %s)",
        (call_id, NO_TRUNK, audio_hash, extra, status),
    )
    return call_id


@pytest.fixture
def own_calls(db: DB) -> Iterator[None]:
    yield
    db.execute(
        "UPDATE calls SET status = 'canceled', status_reason = 'test over', ended_at = now() "
        "WHERE trunk = %s AND status <> 'canceled'",
        (NO_TRUNK,),
    )


def _rows(db: DB, hashes: list[str]) -> dict[str, str]:
    rows = db.execute("SELECT hash, status FROM audio_assets WHERE hash = ANY(%s)", (hashes,)).fetchall()
    return {str(r["hash"]): str(r["status"]) for r in rows}


async def test_prune_keeps_what_live_calls_need_and_deletes_the_rest(
    db: DB, tmp_path: Path, own_calls: None
) -> None:
    unneeded = _asset(db, tmp_path, "an old notice nobody will hear again")
    finished = _asset(db, tmp_path, "a notice whose call completed")
    prompt = _asset(db, tmp_path, "a prompt a queued call waits to play")
    reply = _asset(db, tmp_path, "a reply a ringing call may play")
    voicemail = _asset(db, tmp_path, "a voicemail message of a queued call")
    rendering = _asset(db, tmp_path, "a render in flight", status="pending")
    recent = _asset(db, tmp_path, "a notice rendered yesterday", age_days=0)
    _call(db, finished, status="completed")
    _call(db, prompt)
    _call(db, finished, status="ringing", extra=[reply])
    _call(db, finished, status="queued", extra=[voicemail])  # the completed call's words, asked again
    ours = [unneeded, finished, prompt, reply, voicemail, rendering, recent]
    stray = tmp_path / audio_file_name(_words("a file whose row went").key())
    stray.write_bytes(b"\xff" * 800)
    os.utime(stray, (time.time() - 7200, time.time() - 7200))

    pruner = AudioPruner(OwnAssets(os.environ["DATABASE_URL"], ours), AudioDirectory(tmp_path), batch=2)
    report = await pruner.prune(7 * DAY)

    assert _rows(db, ours) == {
        finished: "ready",  # a queued call asked for the same words again
        prompt: "ready",
        reply: "ready",
        voicemail: "ready",
        rendering: "pending",
        recent: "ready",
    }
    assert not (tmp_path / audio_file_name(unneeded)).exists() and not stray.exists()
    for kept in (finished, prompt, reply, voicemail, recent):
        assert (tmp_path / audio_file_name(kept)).exists()
    assert (report.prompts, report.bytes, report.files, report.strays) == (1, 16000, 2, 1)

    # Once no live call needs them, they go too (a retry's call is queued: still needed until then).
    db.execute(
        "UPDATE calls SET status = 'completed' WHERE trunk = %s AND audio_hash = %s", (NO_TRUNK, finished)
    )
    db.execute(
        "UPDATE calls SET status = 'no-answer' WHERE trunk = %s AND audio_hash = %s", (NO_TRUNK, prompt)
    )
    await pruner.prune(7 * DAY)
    assert _rows(db, ours) == {rendering: "pending", recent: "ready"}


async def test_a_call_accepted_during_a_prune_finds_its_audio(
    db: DB, tmp_path: Path, own_calls: None
) -> None:
    """Intake's own statement (persistence/calls.py insert_assets) and its call in one
    transaction, racing the prune of that very asset, many times over: afterwards the call's audio
    row is there every time, ready as before or pending again with its render asked for."""
    url = os.environ["DATABASE_URL"]
    outcomes: dict[str, int] = {"kept": 0, "rendered again": 0}

    async def accept(key: str, text: str) -> tuple[str, ...]:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            async with conn.transaction():
                renders = await insert_assets(conn, "espeak-ng", [(key, "en-us", text)])
                await asyncio.sleep(0)  # let the prune in between the two statements
                await conn.execute(
                    "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, "
                    "ring_timeout_s) VALUES (%s, '+14152350187', %s, %s, 'en-us', %s, 30)",
                    (uuid.uuid4(), NO_TRUNK, text, key),
                )
            return renders

    for round_ in range(40):
        key = _asset(db, tmp_path, f"race round {round_}")
        row = db.execute("SELECT text FROM audio_assets WHERE hash = %s", (key,)).fetchone()
        assert row is not None
        text = str(row["text"])
        store = OwnAssets(url, [key])
        renders, _ = await asyncio.gather(accept(key, text), store.delete_unneeded([key], 7 * DAY))
        status = _rows(db, [key]).get(key)
        assert status is not None, f"round {round_}: the accepted call's audio row is gone"
        if status == "pending":
            assert renders == (key,), "the row was inserted again: this request must enqueue its render"
            outcomes["rendered again"] += 1
        else:
            assert status == "ready" and renders == ()
            outcomes["kept"] += 1
        # and a prune now keeps it: a queued call needs it
        assert await store.delete_unneeded([key], 7 * DAY) == []
    print("race outcomes:", outcomes)


def test_cli_prune_runs_and_reports(tmp_path: Path) -> None:
    """Against the stack's database, in an empty audio directory of its own: nothing is 100 years
    old, so it deletes no row; the old stray file there goes."""
    stray = tmp_path / audio_file_name(_words("a stray file for the command line").key())
    stray.write_bytes(b"\xff" * 8000)
    os.utime(stray, (time.time() - 7200, time.time() - 7200))
    result = sespcl("audio", "prune", "--older-than-days", "36500", SESPCL_AUDIO_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (
        "0 prompts older than 36500 days deleted (0 bytes); 1 files deleted, 1 of them without a row"
        in result.stdout
    )
    assert not stray.exists()
