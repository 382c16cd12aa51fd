"""Request bodies of the v1 API (pydantic), strict: unknown fields and wrong types are refused."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.api.tts_fields import VOICE_PATTERN, TtsIn
from orchestrator.api.two_way import TWO_WAY_FIELDS, CampaignTwoWayFields, TwoWayFields
from orchestrator.domain.call import CallStatus
from orchestrator.domain.calling_hours import CallingWindow, zone
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.phone import parse_e164
from orchestrator.domain.requests import CallRequest, CampaignRequest
from orchestrator.domain.retry import RetryPolicy
from orchestrator.domain.segments import TtsMode
from orchestrator.domain.text import control_character_position

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
MAX_METADATA_BYTES = 4096


class WindowIn(BaseModel):
    """Local calling hours, HH:MM to HH:MM (24 h; the end is exclusive; may cross midnight)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    start: str
    end: str

    @model_validator(mode="after")
    def _valid(self) -> WindowIn:
        CallingWindow.parse(self.start, self.end)
        return self

    def window(self) -> CallingWindow:
        return CallingWindow.parse(self.start, self.end)


def _check_tz(value: str | None) -> str | None:
    if value is not None:
        zone(value)
    return value


LenientDatetime = Annotated[AwareDatetime, Strict(False)]


RetryOutcome = Literal["busy", "no-answer", "failed"]
"""domain/retry.py's RETRYABLE, spelled out for the JSON schema (a unit test holds them equal)."""


class RetryFields(BaseModel):
    """Retries by outcome, shared by a call and a campaign's defaults."""

    max_attempts: int = Field(default=1, ge=1, le=10)
    retry_on: list[RetryOutcome] = Field(default_factory=list)
    retry_backoff_s: float = Field(default=60.0, ge=0, le=86400)

    @field_validator("retry_backoff_s", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("retry_backoff_s")
    @classmethod
    def _milliseconds(cls, value: float) -> float:
        # stored as a 4-byte real: 5e-324 would underflow in PostgreSQL; no wait is finer than a ms
        return round(value, 3)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            retry_on=frozenset(CallStatus(s) for s in self.retry_on),
            backoff_s=self.retry_backoff_s,
        )


class CallIn(RetryFields, TwoWayFields):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    to: str
    from_: str | None = Field(default=None, alias="from")
    trunk: str | None = Field(default=None, pattern=NAME_PATTERN)
    tts: TtsIn
    ring_timeout_s: int = Field(default=30, ge=5, le=120)
    metadata: dict[str, Any] | None = None
    not_before: LenientDatetime | None = None
    expires_at: LenientDatetime | None = None
    calling_window: WindowIn | None = None
    tz: str | None = Field(default=None, description="IANA zone; else the number's own zones")

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _check_tz(value)

    @field_validator("expires_at")
    @classmethod
    def _expiry(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None:
            if value <= datetime.now(UTC):
                raise ValueError("is already past")
            not_before = info.data.get("not_before")
            if not_before is not None and value <= not_before:
                raise ValueError("must come after not_before")
        return value

    @field_validator("to", "from_")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        return None if value is None else parse_e164(value)

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            except ValueError as exc:
                raise ValueError("may hold only standard JSON numbers (no NaN or Infinity)") from exc
            if "\\u0000" in text:  # JSON allows it; PostgreSQL's jsonb does not
                raise ValueError("may not hold the NUL character (\\u0000)")
            size = len(text.encode("utf-8"))
            if size > MAX_METADATA_BYTES:
                raise ValueError(f"is {size} bytes; at most {MAX_METADATA_BYTES} are allowed")
        return value

    def canonical_hash(self) -> str:
        """Identifies the request's content, for Idempotency-Key replays."""
        # The two-way fields not given are left out: a plain body hashes as it did before them.
        unasked = {name for name in TWO_WAY_FIELDS if getattr(self, name) is None}
        canonical = self.model_dump_json(by_alias=True, exclude_none=False, exclude=unasked)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_request(
        self, *, idempotency_key: str | None, created_by: str, destinations: DestinationPolicy
    ) -> CallRequest:
        return CallRequest(
            to=self.to,
            from_=self.from_,
            trunk=self.trunk,
            text=self.tts.text,
            voice=self.tts.voice,
            ring_timeout_s=self.ring_timeout_s,
            metadata=self.metadata,
            not_before=self.not_before,
            expires_at=self.expires_at,
            window=self.calling_window.window() if self.calling_window else None,
            tz=self.tz,
            retry=self.retry_policy(),
            created_by=created_by,
            destinations=destinations,
            idempotency_key=idempotency_key,
            request_hash=self.canonical_hash() if idempotency_key is not None else None,
            interaction=self.interaction_request(),
            status_callback=self.callback(),
        )


class CampaignTtsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(
        min_length=1,
        max_length=2000,
        description="May hold {{variable}} placeholders, typed ones too: {{code|digits}}, "
        "{{amount|number}}, {{when|time}}, {{when|date}}",
    )
    voice: str | None = Field(default=None, pattern=VOICE_PATTERN)
    mode: Literal["segments", "whole"] = Field(
        default="segments",
        description="segments: fixed text, values and typed words rendered once each and played in "
        "order (scales to a million personal calls); whole: each call's text rendered whole "
        "(natural prosody, one render per distinct text)",
    )


class CampaignDefaultsIn(RetryFields, CampaignTwoWayFields):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    trunk: str | None = Field(default=None, pattern=NAME_PATTERN)
    from_: str | None = Field(default=None, alias="from")
    tts: CampaignTtsIn
    ring_timeout_s: int = Field(default=30, ge=5, le=120)
    calling_window: WindowIn | None = None
    expires_at: LenientDatetime | None = None

    @field_validator("from_")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        return None if value is None else parse_e164(value)

    @field_validator("expires_at")
    @classmethod
    def _expiry(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("is already past")
        return value


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    defaults: CampaignDefaultsIn
    cps: float | None = Field(default=None, ge=0.01, le=10000)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if control_character_position(value) is not None:
            raise ValueError("contains a control character")
        return value

    @field_validator("cps", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def to_request(self, *, created_by: str) -> CampaignRequest:
        defaults = self.defaults
        return CampaignRequest(
            name=self.name,
            trunk=defaults.trunk,
            from_=defaults.from_,
            text=defaults.tts.text,
            voice=defaults.tts.voice,
            ring_timeout_s=defaults.ring_timeout_s,
            cps=self.cps,
            window=defaults.calling_window.window() if defaults.calling_window else None,
            expires_at=defaults.expires_at,
            retry=defaults.retry_policy(),
            created_by=created_by,
            interaction=defaults.interaction_request(),
            status_callback=defaults.callback(),
            tts_mode=TtsMode(defaults.tts.mode),
        )
