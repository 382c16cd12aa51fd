"""libespeak-ng in this process, through ctypes: one engine per process, initialized once, in
synchronous mode (espeak_Synth returns when the words are spoken; a callback collects the 16-bit
samples). No process is started per prompt and the text never reaches a command line."""

from __future__ import annotations

import ctypes
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_short,
    c_size_t,
    c_ubyte,
    c_uint,
    c_void_p,
)
from typing import Any

import numpy as np

from orchestrator.domain.telephone_audio import Pcm16

LIBRARY = "libespeak-ng.so.1"
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # an error is returned, never exit() from inside the library
_BUFFER_MS = 1000  # samples reach the callback in buffers this long: few callbacks a prompt
_CHARS_UTF8 = 1  # plain UTF-8 text: no SSML, no phoneme input; no end-of-text pause added
_POS_CHARACTER = 1
_RATE = 1  # espeakRATE, words a minute
_EE_OK = 0
_EE_NOT_FOUND = 2

_SynthCallback = CFUNCTYPE(c_int, POINTER(c_short), c_int, c_void_p)


class _Voice(Structure):
    """espeak_VOICE (speak_lib.h)."""

    _fields_ = [
        ("name", c_char_p),
        ("languages", c_char_p),
        ("identifier", c_char_p),
        ("gender", c_ubyte),
        ("age", c_ubyte),
        ("variant", c_ubyte),
        ("xx1", c_ubyte),
        ("score", c_int),
        ("spare", c_void_p),
    ]


class EngineError(Exception):
    """The library failed (it could not start, or a synthesis call returned an error)."""


class UnknownVoice(EngineError):
    pass


class EspeakEngine:
    """The library keeps one voice, one set of parameters and one callback for the whole
    process: a lock makes each synthesis (voice, rate, words, samples) one unit."""

    def __init__(self) -> None:
        try:
            self._lib = ctypes.CDLL(LIBRARY)
        except OSError as exc:
            raise EngineError(f"{LIBRARY} cannot be loaded: {exc}") from exc
        self._declare()
        self.sample_rate = int(
            self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, None, _INITIALIZE_DONT_EXIT)
        )
        if self.sample_rate <= 0:
            raise EngineError(f"espeak_Initialize failed ({self.sample_rate})")
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._voice: str | None = None  # set in the library now: setting it again costs ~0.1 ms
        self._callback = _SynthCallback(self._collect)  # referenced here: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [c_int, c_int, c_char_p, c_int]
        lib.espeak_Initialize.restype = c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [c_char_p]
        lib.espeak_SetVoiceByName.restype = c_int
        lib.espeak_SetParameter.argtypes = [c_int, c_int, c_int]
        lib.espeak_SetParameter.restype = c_int
        # text, its size; start, its unit, end; flags; unique id, user data
        synth: list[Any] = [c_void_p, c_size_t, c_uint, c_int, c_uint, c_uint, POINTER(c_uint), c_void_p]
        lib.espeak_Synth.argtypes = synth
        lib.espeak_Synth.restype = c_int
        lib.espeak_ListVoices.argtypes = [c_void_p]
        lib.espeak_ListVoices.restype = POINTER(POINTER(_Voice))

    def _collect(self, wav: ctypes._Pointer[c_short], count: int, events: int | None) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # go on

    def voice_ids(self) -> list[str]:
        """Every installed voice's identifier ('gmw/en-us')."""
        with self._lock:
            voices = self._lib.espeak_ListVoices(None)
            ids: list[str] = []
            i = 0
            while voices[i]:
                identifier = voices[i].contents.identifier
                if identifier:
                    ids.append(identifier.decode())
                i += 1
        return ids

    def _set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        self._voice = None
        found = self._lib.espeak_SetVoiceByName(voice.encode())
        if found == _EE_NOT_FOUND:
            raise UnknownVoice(f"unknown voice {voice!r}")
        if found != _EE_OK:
            raise EngineError(f"espeak_SetVoiceByName failed ({found})")
        self._voice = voice

    def synthesize(self, text: str, voice: str, rate_wpm: int) -> Pcm16:
        """The words as 16-bit mono samples at `sample_rate`."""
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._set_voice(voice)
            self._lib.espeak_SetParameter(_RATE, rate_wpm, 0)
            self._chunks = []
            result = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            pcm = b"".join(self._chunks)
            self._chunks = []
        if result != _EE_OK:
            raise EngineError(f"espeak_Synth failed ({result})")
        return np.frombuffer(pcm, dtype=np.int16)


_started = threading.Lock()
_engine: EspeakEngine | None = None


def engine() -> EspeakEngine:
    """The process's engine, started on first use (a worker: its first render). Two engines
    would share the library's one callback: the second would take the first one's samples."""
    global _engine
    with _started:
        if _engine is None:
            _engine = EspeakEngine()
        return _engine
