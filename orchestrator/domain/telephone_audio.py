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
EDGE_PAD_MS = 25
"""Silence kept (or added) before the first and after the last sound: prompts played in a row
sound like one sentence, not like separate recordings (50 ms between two pieces, about a pause
between words; every 100 ms more a piece also kept a message from segments' calls up longer)."""
SILENCE_LEVEL = 64
"""Samples at or below this magnitude (about -54 dBFS) are silence; espeak-ng's own silence is
exact zeros, and an 'h' or 's' onset stays well above it."""

Pcm16 = npt.NDArray[np.int16]


_SEARCH_STEP = 2048
"""Samples looked at a time from each end: espeak-ng's edges are a few ms of silence, so the
sound is found in the first step almost always, without a pass over the whole prompt."""


def _first_loud(samples: Pcm16) -> int | None:
    for start in range(0, samples.size, _SEARCH_STEP):
        chunk = samples[start : start + _SEARCH_STEP]
        loud = (chunk > SILENCE_LEVEL) | (chunk < -SILENCE_LEVEL)
        if loud.any():
            return start + int(np.argmax(loud))
    return None


def speech_span(samples: Pcm16) -> Pcm16:
    """The samples from the first sound to the last (a view: nothing copied); empty when all
    is silence."""
    first = _first_loud(samples)
    if first is None:
        return samples[:0]
    from_end = _first_loud(samples[::-1])
    assert from_end is not None  # the first sound is a sound from either end
    return samples[first : samples.size - from_end]


def resample(samples: Pcm16, rate: int, to_rate: int = TELEPHONE_RATE) -> Pcm16:
    """Band-limited (soxr): nothing above the new Nyquist folds back as noise. soxr's medium
    quality (16-bit precision) is still finer than 8-bit mu-law carries, in about a tenth less
    time than its default (20-bit)."""
    if rate == to_rate:
        return samples
    out: Pcm16 = soxr.resample(samples, rate, to_rate, quality="MQ")
    return out


def _mulaw_table() -> npt.NDArray[np.uint8]:
    """audioop's mu-law code of every 16-bit value, indexed by the value's bits read unsigned."""
    every = np.arange(-32768, 32768, dtype=np.int16)
    codes = np.frombuffer(audioop.lin2ulaw(every.tobytes(), 2), dtype=np.uint8)
    table = np.empty(65536, dtype=np.uint8)
    table[every.view(np.uint16)] = codes
    return table


_MULAW = _mulaw_table()


def mulaw(samples: Pcm16) -> bytes:
    """G.711 mu-law, one byte a sample (a lookup in audioop's own codes: about half the time
    of converting with audioop each time)."""
    return _MULAW[samples.view(np.uint16)].tobytes()


_PAD = mulaw(np.zeros(TELEPHONE_RATE * EDGE_PAD_MS // 1000, dtype=np.int16))


def telephone_audio(samples: Pcm16, rate: int) -> bytes:
    """8 kHz mu-law of `samples` (16-bit at `rate` Hz) with exactly EDGE_PAD_MS of silence
    before the first sound and after the last, whatever silence the engine put there. The pads
    are added once encoded: the resampler is not given silence to filter."""
    span = speech_span(samples)
    if span.size == 0:
        return _PAD + _PAD
    return _PAD + mulaw(resample(span, rate)) + _PAD


def duration_ms(mulaw_bytes: int) -> int:
    return mulaw_bytes * 1000 // TELEPHONE_RATE
