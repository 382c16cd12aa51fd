"""The far ends' audio (tests/far_ends.py): what the SIPp scenarios stream must be what the
benchmark and the integration tests believe it is."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.far_ends import SAMPLE_RATE, Kind, greetings, render, write_far_end


def _linear(byte: int) -> int:
    """G.711 µ-law to 16-bit linear."""
    u = ~byte & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    return -(magnitude - 0x84) if u & 0x80 else magnitude - 0x84


def _level(data: bytes, start_s: float, length_s: float) -> int:
    """RMS of a stretch of µ-law audio, as 16-bit linear."""
    chunk = data[int(start_s * SAMPLE_RATE) : int((start_s + length_s) * SAMPLE_RATE)]
    return int(math.sqrt(sum(_linear(b) ** 2 for b in chunk) / max(len(chunk), 1)))


def test_the_same_seed_gives_the_same_greetings() -> None:
    assert greetings(5, 5, seed=3) == greetings(5, 5, seed=3)
    assert greetings(5, 5, seed=3) != greetings(5, 5, seed=4)


def test_kinds_counts_and_beeps() -> None:
    made = greetings(8, 12, seed=1)
    humans = [g for g in made if g.kind is Kind.HUMAN]
    machines = [g for g in made if g.kind is Kind.MACHINE]
    assert len(humans) == 8 and len(machines) == 12
    assert all(g.beep_s is None for g in humans)
    assert sum(1 for g in machines if g.beep_s is None) == 3, "a quarter of the boxes have no beep"
    assert len({(g.voice, g.speed_wpm) for g in machines}) > 6, "varied voices and speeds"


def test_a_voicemail_greeting_is_speech_then_beep_then_silence(tmp_path: Path) -> None:
    rendered = write_far_end(tmp_path, Kind.MACHINE)
    assert rendered.path.name == "voicemail.ulaw"
    data = rendered.path.read_bytes()
    assert rendered.beep_at_s is not None and 5 < rendered.speech_s < 25
    assert len(data) / SAMPLE_RATE == pytest.approx(rendered.beep_at_s + 0.8 + 60, abs=1.0)
    beep_s = rendered.greeting.beep_s
    assert beep_s is not None
    # the beep: loud and steady (half scale sine ≈ 11,500 RMS); after it, digital silence
    assert _level(data, rendered.beep_at_s + 0.05, beep_s - 0.1) > 8000
    assert _level(data, rendered.speech_end_s, rendered.greeting.gap_before_beep_s - 0.05) < 10
    assert _level(data, rendered.beep_at_s + beep_s + 0.05, 30) < 10
    assert _level(data, rendered.greeting.silence_before_s, rendered.speech_s - 0.5) > 300


def test_a_person_says_a_little_then_waits(tmp_path: Path) -> None:
    (greeting,) = greetings(1, 0, seed=5)
    rendered = render(greeting, tmp_path / "human.ulaw")
    data = rendered.path.read_bytes()
    assert rendered.beep_at_s is None and rendered.speech_s < 3
    assert _level(data, 0, greeting.silence_before_s - 0.05) < 10
    assert _level(data, rendered.speech_end_s + 0.5, 30) < 10
