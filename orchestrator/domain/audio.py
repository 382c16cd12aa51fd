"""Content addressing of rendered prompts: identical requests share one file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

AUDIO_EXTENSION = "ulaw"
"""Raw 8 kHz mu-law: what a ulaw trunk sends, so Asterisk plays it without transcoding."""


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str
    engine: str = "espeak-ng"
    options: dict[str, int | str] = field(default_factory=dict)

    def key(self) -> str:
        """sha256 over a canonical JSON of everything that changes the audio."""
        if not self.options:
            # The same bytes as the general form below, built around the one encoded string:
            # a million personal rows hash a million names.
            return hashlib.sha256(
                (
                    f'{{"engine":{json.dumps(self.engine, ensure_ascii=False)},"options":{{}},'
                    f'"text":{json.dumps(self.text, ensure_ascii=False)},'
                    f'"voice":{json.dumps(self.voice, ensure_ascii=False)}}}'
                ).encode()
            ).hexdigest()
        canonical = json.dumps(
            {"engine": self.engine, "voice": self.voice, "options": self.options, "text": self.text},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def audio_file_name(key: str) -> str:
    return f"{key}.{AUDIO_EXTENSION}"
