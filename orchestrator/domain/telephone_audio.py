"""A speech engine's 16-bit PCM made into what a ulaw trunk carries: 8 kHz G.711 mu-law, its
silent edges cut to a short pad (prompts are played one after another: Playback(a&b&c))."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import numpy.typing as npt
import soxr

if sys.version_info >= (3, 13):  # pragma: no cover - the image runs 3.11
    import audioop  # audioop-lts: the same C module, kept outside the standard library
else:
    with warnings.catch_warnings():
        # Deprecated in 3.11 only in favour of audioop-lts, which installs from 3.13 on.
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

TELEPHONE_RATE = 8000
EDGE_PAD_MS = 60
"""Silence kept (or added) before the first and after the last sound: prompts played in a row
sound like one sentence, not like separate recordings."""
SILENCE_LEVEL = 64
"""Samples at or below this magnitude (about -54 dBFS) are silence; espeak-ng's own silence is
exact zeros, and an 'h' or 's' onset stays well above it."""

Pcm16 = npt.NDArray[np.int16]


def trim_silence(samples: Pcm16, rate: int, pad_ms: int = EDGE_PAD_MS) -> Pcm16:
    """The samples between the first and last sound, with exactly `pad_ms` of silence on each
    side. All silence gives the two pads alone."""
    pad = np.zeros(rate * pad_ms // 1000, dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_LEVEL)
    if loud.size == 0:
        return np.concatenate([pad, pad])
    return np.concatenate([pad, samples[loud[0] : loud[-1] + 1], pad])


def resample(samples: Pcm16, rate: int, to_rate: int = TELEPHONE_RATE) -> Pcm16:
    """Band-limited (soxr, high quality): nothing above the new Nyquist folds back as noise."""
    if rate == to_rate:
        return samples
    out: Pcm16 = soxr.resample(samples, rate, to_rate, quality="HQ")
    return out


def mulaw(samples: Pcm16) -> bytes:
    """G.711 mu-law, one byte a sample."""
    return audioop.lin2ulaw(samples.astype("<i2", copy=False).tobytes(), 2)


def telephone_audio(samples: Pcm16, rate: int) -> bytes:
    """8 kHz mu-law of `samples` (16-bit at `rate` Hz), silent edges cut to the pad."""
    return mulaw(resample(trim_silence(samples, rate), rate))


def duration_ms(mulaw_bytes: int) -> int:
    return mulaw_bytes * 1000 // TELEPHONE_RATE
