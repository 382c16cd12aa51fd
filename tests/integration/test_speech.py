"""Speech rendering against the real espeak-ng (no stack needed)."""

from __future__ import annotations

import os
import uuid
import wave
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator import speech
from orchestrator.config import Settings
from orchestrator.domain.audio import SpeechRequest
from orchestrator.persistence.db import connect


def test_espeak_command_line_fallback_renders_the_words(tmp_path: Path) -> None:
    """The path taken when pyttsx3's driver leaves no file: the same words, from espeak-ng
    itself, text on stdin (a text starting with '-' is words, not an option)."""
    wav = tmp_path / "speech-cli.wav"
    speech._render_with_espeak_cli(SpeechRequest(text="-v Hello, your power is back.", voice="en-us"), wav)
    with wave.open(str(wav), "rb") as reader:
        seconds = reader.getnframes() / reader.getframerate()
    assert 1.0 < seconds < 6.0, seconds


def test_render_gives_8_khz_mulaw_of_the_right_length(tmp_path: Path) -> None:
    path, duration_ms = speech.render(
        SpeechRequest(text="Hello, your power is back.", voice="en-us"), tmp_path
    )
    assert path.suffix == ".ulaw" and duration_ms == path.stat().st_size // 8  # 8,000 bytes a second
    assert 1000 < duration_ms < 6000


def test_a_render_that_may_pass_is_tried_again_before_its_calls_fail(
    db: psycopg.Connection[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sox crashing (a stand-in sox that exits 1, first on the PATH) is not the prompt's fault:
    the asset stays pending for the sweep to enqueue again, and only the third failure fails the
    calls waiting on it, with the reason. An unknown voice fails them at once."""
    from workers import context
    from workers.tts import RENDER_TRIES, render_audio

    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "sox").write_text("#!/bin/sh\necho 'sox: crashed' >&2\nexit 1\n")
    (broken / "sox").chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}:{os.environ['PATH']}")
    request = SpeechRequest(text=f"Render retry test {uuid.uuid4()}.", voice="en-us")
    # Created "in the future": the stack's sweep for lost renders leaves it alone meanwhile.
    db.execute(
        "INSERT INTO audio_assets (hash, engine, voice, text, created_at) "
        "VALUES (%s, 'espeak-ng', 'en-us', %s, now() + interval '1 hour')",
        (request.key(), request.text),
    )
    call = db.execute(
        "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s) "
        "VALUES (%s, '+14155550123', 'render-test-no-trunk', %s, 'en-us', %s, 30) RETURNING id",
        (uuid.uuid4(), request.text, request.key()),
    ).fetchone()
    assert call is not None
    context.install(context.WorkerContext(settings=Settings(), db=connect(os.environ["DATABASE_URL"])))

    def state() -> tuple[str, str, str | None]:
        row = db.execute(
            "SELECT a.status AS asset, c.status AS call, c.status_reason FROM calls c "
            "JOIN audio_assets a ON a.hash = c.audio_hash WHERE c.id = %s",
            (call["id"],),
        ).fetchone()
        assert row is not None
        return row["asset"], row["call"], row["status_reason"]

    for _ in range(RENDER_TRIES - 1):
        assert render_audio(request.key()) == "pending"
        assert state() == ("pending", "queued", None)
    assert render_audio(request.key()) == "failed"
    asset, status, reason = state()
    assert (asset, status) == ("failed", "failed") and reason is not None and "sox" in reason
