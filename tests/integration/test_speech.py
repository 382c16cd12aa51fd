"""Speech rendering against the real espeak-ng (no stack needed)."""

from __future__ import annotations

import wave
from pathlib import Path

from orchestrator import speech
from orchestrator.domain.audio import SpeechRequest


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
