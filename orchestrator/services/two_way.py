"""A two-way call's words (replies to digits, the voicemail message) as audio hashes: each is
content-addressed exactly as the prompt is (domain/audio.py), so the same words in the same voice
are one audio_assets row and one render, whichever call or campaign asks for them."""

from __future__ import annotations

from collections.abc import Callable, Collection

from orchestrator.domain.audio import SpeechRequest
from orchestrator.domain.interaction import DigitReply, Interaction, Speech
from orchestrator.domain.requests import InteractionRequest, SpeechAsk
from orchestrator.services.choices import choose_voice

HASH_CACHE_SIZE = 10_000
"""Distinct (text, voice) pairs kept hashed: a bulk upload whose rows repeat a few replies hashes
each once; one whose every row differs is bounded all the same."""


class SpeechRenderer:
    """Turns what a request asks into the domain's `Interaction`: voices chosen and checked,
    texts hashed."""

    def __init__(self, *, engine: str, voices: Callable[[], Collection[str]]) -> None:
        self._engine = engine
        self._voices = voices
        self._hashes: dict[tuple[str, str], str] = {}

    def audio_hash(self, text: str, voice: str) -> str:
        key = (text, voice)
        found = self._hashes.get(key)
        if found is None:
            if len(self._hashes) >= HASH_CACHE_SIZE:
                self._hashes.clear()
            found = self._hashes[key] = SpeechRequest(text=text, voice=voice, engine=self._engine).key()
        return found

    def speech(self, ask: SpeechAsk, call_voice: str, *, field: str) -> Speech:
        """`field`: where the request asked for it, named in an unknown-voice 422."""
        voice = (
            call_voice
            if ask.voice is None
            else choose_voice(ask.voice, call_voice, self._voices, field=field)
        )
        return Speech(text=ask.text, voice=voice, audio_hash=self.audio_hash(ask.text, voice))

    def interaction(self, ask: InteractionRequest, call_voice: str, *, prefix: str = "") -> Interaction:
        """`call_voice`: the prompt's voice, which a reply without its own takes; `prefix`: the
        request fields' parent ("defaults." for a campaign's)."""
        if ask == InteractionRequest():
            return Interaction()

        def said(speech: SpeechAsk | None, field: str) -> Speech | None:
            return None if speech is None else self.speech(speech, call_voice, field=f"{prefix}{field}.voice")

        return Interaction(
            gather=ask.gather,
            on_digits={
                key: DigitReply(speech=said(reply.speech, f"on_digits.{key}.tts"), dnc=reply.dnc)
                for key, reply in ask.on_digits.items()
            },
            machine_detection=ask.machine_detection,
            amd=ask.amd,
            voicemail=said(ask.voicemail, "voicemail.tts"),
            dialplan_context=ask.dialplan_context,
        )
