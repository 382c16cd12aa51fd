"""Speech rendering against the real libespeak-ng, in this process (no stack needed; the render
jobs use PostgreSQL at DATABASE_URL)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from orchestrator import speech
from orchestrator.config import Settings
from orchestrator.domain.audio import SpeechRequest
from orchestrator.domain.telephone_audio import EDGE_PAD_MS, SILENCE_LEVEL
from orchestrator.persistence.db import connect

SILENT = {0xFF, 0x7F, 0xFE, 0x7E}
"""mu-law codes of 0 and +-1 (the resampler's filter leaves a faint ringing in the pads)."""
HELLO = SpeechRequest(text="Hello Margaret, your appointment is on Tuesday at three.", voice="en-us")


def _espeak_cli_speech_s(text: str, tmp_path: Path) -> float:
    """Seconds from the first to the last sound of espeak-ng's own command line's WAV."""
    wav = tmp_path / "cli.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), "--stdin"], input=text.encode(), check=True
    )
    with wave.open(str(wav), "rb") as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_LEVEL)
    return float(loud[-1] - loud[0] + 1) / rate


def test_render_gives_8_khz_mulaw_as_long_as_the_words(tmp_path: Path) -> None:
    """A raw file has no header to read the rate from: its length says it. One byte a sample at
    8 kHz, as long as espeak-ng's own command line speaks the same words, plus the two pads."""
    path, duration_ms = speech.render(HELLO, tmp_path)
    size = path.stat().st_size
    assert path.name == f"{HELLO.key()}.ulaw" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert duration_ms == size // 8
    spoken_s = _espeak_cli_speech_s(HELLO.text, tmp_path)
    assert 2.0 < spoken_s < 5.0  # ten words at 160 a minute
    assert abs(size / 8000 - (spoken_s + 2 * EDGE_PAD_MS / 1000)) < 0.02
    audio = path.read_bytes()
    pad = 8 * EDGE_PAD_MS
    assert set(audio[: pad // 2]) <= SILENT
    assert len(set(audio[pad : pad + 4000])) > 50  # speech uses many levels


def test_different_words_give_different_audio_and_the_same_words_the_same_length(tmp_path: Path) -> None:
    """espeak-ng's pitch flutter and breath noise run on from one prompt to the next in a process:
    the same words again are about the same length, not the same bytes."""
    short = SpeechRequest(text="Hello John, see you soon.", voice="en-us")
    first, _ = speech.render(HELLO, tmp_path / "a")
    again, _ = speech.render(HELLO, tmp_path / "b")
    other, _ = speech.render(short, tmp_path / "a")
    assert abs(first.stat().st_size - again.stat().st_size) < 0.03 * first.stat().st_size
    assert other.stat().st_size < first.stat().st_size
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted([first.name, other.name])


def test_rate_and_voice_change_the_audio(tmp_path: Path) -> None:
    slow, slow_ms = speech.render(
        SpeechRequest(text=HELLO.text, voice="en-us", options={"rate": 120}), tmp_path
    )
    _, base_ms = speech.render(HELLO, tmp_path)
    british, _ = speech.render(SpeechRequest(text=HELLO.text, voice="en"), tmp_path)
    assert slow_ms > base_ms * 1.2
    assert british.read_bytes() != (tmp_path / f"{HELLO.key()}.ulaw").read_bytes()


def test_text_is_words_never_options_or_markup(tmp_path: Path) -> None:
    path, duration_ms = speech.render(
        SpeechRequest(text='-v xx <speak><audio src="/etc/passwd"/>', voice="en-us"), tmp_path
    )
    assert duration_ms > 1000 and path.exists()


def test_an_unknown_voice_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(speech.SpeechError) as raised:
        speech.render(SpeechRequest(text="Hello.", voice="xx-nowhere"), tmp_path)
    assert raised.value.permanent and "xx-nowhere" in str(raised.value)
    assert not list(tmp_path.iterdir())


def _one_whole_file(audio_dir: Path, size: int) -> None:
    """The prompt's file alone (no temp file left), about as long as a render alone, from its
    start pad through the words to its end pad (a write cut short would lose the end)."""
    assert [p.name for p in audio_dir.iterdir()] == [f"{HELLO.key()}.ulaw"]
    audio = (audio_dir / f"{HELLO.key()}.ulaw").read_bytes()
    assert abs(len(audio) - size) < 0.03 * size
    pad = 8 * EDGE_PAD_MS
    assert set(audio[: pad // 2]) <= SILENT and set(audio[-pad // 2 :]) <= SILENT
    assert len(set(audio[pad:-pad])) > 50


def test_two_threads_rendering_one_prompt_leave_one_whole_file(tmp_path: Path) -> None:
    size = speech.render(HELLO, tmp_path / "alone")[0].stat().st_size
    shared = tmp_path / "shared"
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            speech.render(HELLO, shared)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _one_whole_file(shared, size)


def _render_in_process(audio_dir: str, start: Any) -> None:
    speech.available_voices()  # the engine started before the race
    start.wait()
    speech.render(HELLO, Path(audio_dir))


def test_two_processes_rendering_one_prompt_leave_one_whole_file(tmp_path: Path) -> None:
    """Two workers, each with its own engine, on one shared audio directory."""
    size = speech.render(HELLO, tmp_path / "alone")[0].stat().st_size
    shared = tmp_path / "shared"
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    workers = [spawn.Process(target=_render_in_process, args=(str(shared), start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    _one_whole_file(shared, size)


# The render jobs, against PostgreSQL.


@pytest.fixture
def worker_audio(tmp_path: Path) -> Iterator[Path]:
    """The worker context the jobs use: this database, audio into a directory of the test's."""
    from workers import context

    audio_dir = tmp_path / "audio"
    db = connect(os.environ["DATABASE_URL"])
    context.install(context.WorkerContext(settings=Settings(audio_dir=audio_dir), db=db))
    yield audio_dir
    db.close()


def _asset(db: psycopg.Connection[dict[str, Any]], text: str, voice: str = "en-us") -> tuple[str, uuid.UUID]:
    """A pending asset (created "in the future": a stack's sweep for lost renders leaves it
    alone) and a queued call waiting on it."""
    key = SpeechRequest(text=text, voice=voice).key()
    db.execute(
        "INSERT INTO audio_assets (hash, engine, voice, text, created_at) "
        "VALUES (%s, 'espeak-ng', %s, %s, now() + interval '1 hour')",
        (key, voice, text),
    )
    call = db.execute(
        "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s) "
        "VALUES (%s, '+14155550123', 'render-test-no-trunk', %s, %s, %s, 30) RETURNING id",
        (uuid.uuid4(), text, voice, key),
    ).fetchone()
    assert call is not None
    return key, call["id"]


def _state(db: psycopg.Connection[dict[str, Any]], call_id: uuid.UUID) -> dict[str, Any]:
    row = db.execute(
        "SELECT a.status AS asset, a.path, a.duration_ms, a.size_bytes, a.render_count, a.error, "
        "c.status AS call, c.status_reason FROM calls c JOIN audio_assets a ON a.hash = c.audio_hash "
        "WHERE c.id = %s",
        (call_id,),
    ).fetchone()
    assert row is not None
    return dict(row)


def test_a_batch_renders_every_asset_and_fails_only_the_unknown_voice(
    db: psycopg.Connection[dict[str, Any]], worker_audio: Path
) -> None:
    from workers.tts import render_audio_batch

    run = uuid.uuid4().hex[:8]
    good = [_asset(db, f"Hello {name}, this is batch {run}.") for name in ("Margaret", "Oliver")]
    bad = _asset(db, f"Hello Chloe, this is batch {run}.", voice="xx-nowhere")
    missing = "0" * 64
    # A message played in pieces (segments): the unknown voice's audio is its second piece.
    pieced_call = uuid.uuid4()
    db.execute(
        "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, segments, ring_timeout_s) "
        "VALUES (%s, '+14155550124', 'render-test-no-trunk', 'pieces', 'en-us', %s, %s, 30)",
        (pieced_call, good[0][0], [good[0][0], bad[0]]),
    )
    hashes = [good[0][0], bad[0], missing, good[1][0], good[0][0]]

    outcomes = render_audio_batch(hashes)

    assert outcomes == {good[0][0]: "ready", bad[0]: "failed", missing: "unknown", good[1][0]: "ready"}
    for key, call_id in good:
        state = _state(db, call_id)
        assert (state["asset"], state["call"], state["render_count"]) == ("ready", "queued", 1)
        assert state["path"] == str(worker_audio / key)
        assert state["size_bytes"] == (worker_audio / f"{key}.ulaw").stat().st_size
        assert state["duration_ms"] == state["size_bytes"] // 8
    failed = _state(db, bad[1])
    assert (failed["asset"], failed["call"]) == ("failed", "failed")
    assert "unknown voice" in failed["status_reason"]
    pieced = db.execute("SELECT status FROM calls WHERE id = %s", (pieced_call,)).fetchone()
    assert pieced is not None and pieced["status"] == "failed"  # its second piece failed
    assert render_audio_batch(hashes)[good[1][0]] == "ready"  # again: nothing to do
    assert _state(db, good[1][1])["render_count"] == 1


def test_a_render_that_may_pass_is_tried_again_before_its_calls_fail(
    db: psycopg.Connection[dict[str, Any]], worker_audio: Path
) -> None:
    """A disk that refuses the file (here: a file where the audio directory should be) is not
    the prompt's fault: the asset stays pending for the sweep to enqueue again, and only the
    third failure fails the calls waiting on it, with the reason."""
    from workers.tts import RENDER_TRIES, render_audio

    worker_audio.write_text("not a directory")
    key, call_id = _asset(db, f"Render retry test {uuid.uuid4()}.")
    for _ in range(RENDER_TRIES - 1):
        assert render_audio(key) == "pending"
        assert (_state(db, call_id)["asset"], _state(db, call_id)["call"]) == ("pending", "queued")
    assert render_audio(key) == "failed"
    state = _state(db, call_id)
    assert (state["asset"], state["call"]) == ("failed", "failed")
    assert "could not be written" in state["status_reason"]
