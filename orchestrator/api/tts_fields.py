"""The words a body asks to be said (its `tts`), shared by a call's prompt and its two-way replies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.domain.text import control_character_position

VOICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9/_+-]{0,39}$"


class TtsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=2000)
    voice: str | None = Field(default=None, pattern=VOICE_PATTERN)

    @field_validator("text")
    @classmethod
    def _printable(cls, value: str) -> str:
        position = control_character_position(value)
        if position is not None:
            raise ValueError(f"contains a control character at position {position}")
        if not value.strip():
            raise ValueError("must contain something to say")
        return value
