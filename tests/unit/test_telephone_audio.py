"""The pure audio steps between espeak-ng's samples and a ulaw trunk's bytes."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.domain.telephone_audio import (
    EDGE_PAD_MS,
    SILENCE_LEVEL,
    Pcm16,
    duration_ms,
    mulaw,
    resample,
    speech_span,
    telephone_audio,
)

ESPEAK_RATE = 22050


def _tone(hz: float, seconds: float, rate: int = ESPEAK_RATE, amplitude: int = 10000) -> Pcm16:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _g711_level(code: int) -> int:
    """The value a mu-law code stands for, by G.711's own decoding rule (bits inverted; sign,
    3-bit segment, 4-bit step; bias 0x84)."""
    inverted = ~code & 0xFF
    segment, step = (inverted >> 4) & 0x07, inverted & 0x0F
    magnitude = (((step << 3) + 0x84) << segment) - 0x84
    return -magnitude if inverted & 0x80 else magnitude


def _dominant_hz(samples: Pcm16, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0, 3.7])
def test_resampling_keeps_the_length_in_time(seconds: float) -> None:
    out = resample(_tone(440, seconds), ESPEAK_RATE)
    assert out.dtype == np.int16
    assert abs(out.size - seconds * 8000) <= 1


def test_resampling_keeps_a_tone_in_the_telephone_band_at_its_pitch() -> None:
    out = resample(_tone(1000, 1.0), ESPEAK_RATE)
    assert abs(_dominant_hz(out, 8000) - 1000) < 5


def test_resampling_filters_out_what_8_khz_cannot_carry() -> None:
    """A 6 kHz tone would fold back to 2 kHz if only every n-th sample were kept."""
    loud = _tone(6000, 1.0)
    out = resample(loud, ESPEAK_RATE)
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) < 0.01 * np.sqrt(
        np.mean(loud.astype(np.float64) ** 2)
    )


def test_mulaw_encodes_every_g711_level_as_its_code() -> None:
    for code in range(256):
        if code == 0x7F:  # negative zero: zero is encoded as positive zero, 0xFF
            continue
        level = _g711_level(code)
        assert mulaw(np.array([level], dtype=np.int16)) == bytes([code]), (code, level)


def test_mulaw_known_values_and_clipping() -> None:
    samples = np.array([0, 32767, -32768, 120, -16764, 132], dtype=np.int16)
    assert mulaw(samples) == bytes([0xFF, 0x80, 0x00, 0xF0, 0x0F, 0xEF])


def test_the_speech_span_runs_from_the_first_sound_to_the_last() -> None:
    sound = _tone(300, 0.8)
    padded = np.concatenate([np.zeros(ESPEAK_RATE // 2, np.int16), sound, np.zeros(ESPEAK_RATE, np.int16)])
    loud = np.flatnonzero(np.abs(sound) > SILENCE_LEVEL)
    assert np.array_equal(speech_span(padded), sound[loud[0] : loud[-1] + 1])


def test_faint_noise_counts_as_silence_but_a_quiet_onset_does_not() -> None:
    hiss = np.full(2000, 40, np.int16)
    onset = np.array([0, 200, -300, 0], np.int16)
    assert np.array_equal(speech_span(np.concatenate([hiss, onset, hiss])), np.array([200, -300], np.int16))


def test_all_silence_has_no_span() -> None:
    assert speech_span(np.zeros(5000, np.int16)).size == 0


def _edge_silence_ms(audio: bytes) -> tuple[float, float]:
    """Milliseconds of (near) silence at each end of mu-law audio."""
    loud = [i for i, code in enumerate(audio) if abs(_g711_level(code)) > 16]
    return loud[0] / 8, (len(audio) - 1 - loud[-1]) / 8


@pytest.mark.parametrize(("before_s", "after_s"), [(1.0, 0.5), (0.0005, 0.0), (0.0, 2.0)])
def test_every_prompt_starts_and_ends_with_the_same_pad(before_s: float, after_s: float) -> None:
    """Long silences are cut and short ones lengthened: pieces played in a row have even gaps."""
    sound = np.concatenate(
        [
            np.zeros(int(ESPEAK_RATE * before_s), np.int16),
            _tone(500, 1.0),
            np.zeros(int(ESPEAK_RATE * after_s), np.int16),
        ]
    )
    start, end = _edge_silence_ms(telephone_audio(sound, ESPEAK_RATE))
    assert abs(start - EDGE_PAD_MS) < 2 and abs(end - EDGE_PAD_MS) < 2


def test_all_silence_is_the_two_pads() -> None:
    out = telephone_audio(np.zeros(5000, np.int16), ESPEAK_RATE)
    assert out == b"\xff" * (2 * 8 * EDGE_PAD_MS)


def test_telephone_audio_is_one_byte_per_8_khz_sample_of_the_trimmed_sound() -> None:
    sound = np.concatenate([np.zeros(ESPEAK_RATE, np.int16), _tone(500, 2.0), np.zeros(300, np.int16)])
    out = telephone_audio(sound, ESPEAK_RATE)
    expected_s = 2.0 + 2 * EDGE_PAD_MS / 1000
    assert abs(len(out) - expected_s * 8000) <= 2
    assert abs(duration_ms(len(out)) - expected_s * 1000) <= 1
    assert out[: 8 * EDGE_PAD_MS] == b"\xff" * 8 * EDGE_PAD_MS  # mu-law silence
    assert max(abs(_g711_level(code)) for code in out[600:800]) > 5000
