"""The two-way fields of a call body, of a campaign's defaults and of a bulk row (pydantic,
strict), and the same fields shown back in the request's own shape.

Each rule between fields is a field validator reading the fields before it (pydantic validates
in declaration order), so its 422 names the field that breaks it, with a code of its own
(api/refusals.py). A callback URL is checked against the operator's allow list, handed in as the
validation context (`validation_context`); without one, no private address is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from orchestrator.api import json_text
from orchestrator.api.refusals import first_refusal
from orchestrator.api.tts_fields import TtsIn
from orchestrator.domain.campaign import RowError, Template
from orchestrator.domain.interaction import (
    CUSTOM_CONTEXT,
    DIGIT_KEY,
    AmdTuning,
    Gather,
    Interaction,
    MachineDetection,
    Speech,
)
from orchestrator.domain.requests import InteractionRequest, ReplyAsk, SpeechAsk
from orchestrator.domain.text import control_character_position
from orchestrator.domain.webhooks import AllowList, StatusCallback, UrlRefused, WebhookEvent, check_url

MAX_CALLBACK_URL = 2000
MAX_REPLIES = 20
WEBHOOK_ALLOW = "webhook_allow"
"""The validation context's key for the AllowList (SESPCL_WEBHOOK_ALLOW_HOSTS)."""
PASSED_URLS = "passed_urls"
REMEMBERED_URLS = 1000

EventName = Literal["initiated", "ringing", "answered", "completed", "digits", "machine_detection", "hook"]
"""domain/webhooks.py's WebhookEvent, spelled out for the JSON schema (a unit test holds them equal)."""


def refused(code: str, reason: str) -> PydanticCustomError:
    # The reason goes in as context, not as the template: a '{' in it is never a placeholder.
    return PydanticCustomError(code, "{reason}", {"reason": reason})


def validation_context(allow: AllowList, *, remember_urls: bool = False) -> dict[str, Any]:
    """`remember_urls`: skip the check of a URL that passed it before in this context (an
    upload's rows mostly repeat their campaign's callback)."""
    return {WEBHOOK_ALLOW: allow} | ({PASSED_URLS: set()} if remember_urls else {})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GatherIn(_Strict):
    num_digits: int = Field(ge=1, le=32)
    timeout_s: int = Field(default=5, ge=1, le=60)
    finish_on_key: str = Field(default="#", pattern=r"^[0-9*#]?$", description='"" for none')
    retries: int = Field(default=1, ge=0, le=3)

    def gather(self) -> Gather:
        return Gather(
            num_digits=self.num_digits,
            timeout_s=self.timeout_s,
            finish_on_key=self.finish_on_key,
            retries=self.retries,
        )


class ReplyIn(_Strict):
    tts: TtsIn | None = None
    action: Literal["dnc"] | None = None


class AmdIn(_Strict):
    initial_silence_ms: int | None = Field(default=None, ge=100, le=60_000)
    greeting_ms: int | None = Field(default=None, ge=100, le=60_000)
    after_greeting_silence_ms: int | None = Field(default=None, ge=100, le=60_000)
    total_analysis_ms: int | None = Field(default=None, ge=100, le=60_000)


class VoicemailIn(_Strict):
    tts: TtsIn


class DialplanIn(_Strict):
    context: str

    @field_validator("context")
    @classmethod
    def _custom(cls, value: str) -> str:
        if not CUSTOM_CONTEXT.fullmatch(value):
            raise refused(
                "dialplan-context-refused",
                "must be sespcl-custom-NAME: lower-case letters, digits and '-', at most 40 after "
                "the prefix (an operator's own context in asterisk-config/custom/)",
            )
        return value


def _check_callback_url(url: str, allow: AllowList) -> None:
    if len(url) > MAX_CALLBACK_URL:
        raise refused("callback-url-refused", f"is {len(url)} characters; at most {MAX_CALLBACK_URL}")
    if control_character_position(url) is not None or any(c.isspace() for c in url):
        raise refused("callback-url-refused", "may not hold white space or control characters")
    try:
        check_url(url, allow)
    except UrlRefused as exc:
        raise refused("callback-url-refused", str(exc)) from exc


class StatusCallbackIn(_Strict):
    url: str
    events: list[EventName] | None = Field(default=None, min_length=1, description="None: all")

    @field_validator("url")
    @classmethod
    def _reachable(cls, value: str, info: ValidationInfo) -> str:
        context = info.context or {}
        passed: set[str] | None = context.get(PASSED_URLS)
        if passed is not None and value in passed:
            return value
        _check_callback_url(value, context.get(WEBHOOK_ALLOW) or AllowList())
        if passed is not None:
            if len(passed) >= REMEMBERED_URLS:
                passed.clear()
            passed.add(value)
        return value

    def callback(self) -> StatusCallback:
        if self.events is None:
            return StatusCallback(url=self.url)
        return StatusCallback(url=self.url, events=frozenset(WebhookEvent(e) for e in self.events))


def _digit_keys(replies: dict[str, ReplyIn], gather: GatherIn | None) -> dict[str, ReplyIn]:
    for key in replies:
        if not DIGIT_KEY.fullmatch(key):
            raise refused("invalid-digit-key", f"key {key[:40]!r} must be 1 to 32 of 0-9, * and #")
    if gather is None:
        raise refused("on-digits-without-gather", "replies to digits need `gather` (what listens for them)")
    for key in replies:
        if len(key) > gather.num_digits:
            raise refused(
                "digit-key-never-matches",
                f"key {key!r} has {len(key)} digits; gather.num_digits ({gather.num_digits}) ends "
                "the listening before",
            )
        if gather.finish_on_key and gather.finish_on_key in key:
            raise refused(
                "digit-key-never-matches",
                f"key {key!r} holds gather.finish_on_key {gather.finish_on_key!r}, which ends the "
                "listening instead of being pressed",
            )
    return dict(sorted(replies.items()))  # one order, so a replay's canonical hash is the same


class TwoWayFields(BaseModel):
    """What a two-way call asks; every field absent or null: a plain call."""

    gather: GatherIn | None = None
    on_digits: dict[str, ReplyIn] | None = Field(default=None, min_length=1, max_length=MAX_REPLIES)
    machine_detection: Literal["enable", "detect_message_end"] | None = None
    amd: AmdIn | None = None
    voicemail: VoicemailIn | None = None
    dialplan: DialplanIn | None = None
    status_callback: StatusCallbackIn | None = None

    @field_validator("on_digits")
    @classmethod
    def _replies(cls, value: dict[str, ReplyIn] | None, info: ValidationInfo) -> dict[str, ReplyIn] | None:
        return None if value is None else _digit_keys(value, info.data.get("gather"))

    @field_validator("amd")
    @classmethod
    def _amd(cls, value: AmdIn | None, info: ValidationInfo) -> AmdIn | None:
        if value is not None and info.data.get("machine_detection") is None:
            raise refused("amd-without-machine-detection", "tunes machine_detection, which is not asked")
        return value

    @field_validator("voicemail")
    @classmethod
    def _voicemail(cls, value: VoicemailIn | None, info: ValidationInfo) -> VoicemailIn | None:
        if value is not None and info.data.get("machine_detection") != "detect_message_end":
            raise refused(
                "voicemail-without-message-end",
                'is left after a machine\'s greeting: it needs machine_detection "detect_message_end"',
            )
        return value

    @field_validator("dialplan")
    @classmethod
    def _dialplan(cls, value: DialplanIn | None, info: ValidationInfo) -> DialplanIn | None:
        if value is not None and (info.data.get("gather") or info.data.get("on_digits")):
            raise refused(
                "dialplan-excludes-gather",
                "the operator's context takes the call after the answer and gathers its own "
                "digits: leave out gather and on_digits",
            )
        return value

    def interaction_request(self) -> InteractionRequest:
        amd = self.amd
        return InteractionRequest(
            gather=None if self.gather is None else self.gather.gather(),
            on_digits={
                key: ReplyAsk(speech=_ask(reply.tts), dnc=reply.action == "dnc")
                for key, reply in (self.on_digits or {}).items()
            },
            machine_detection=None
            if self.machine_detection is None
            else MachineDetection(self.machine_detection),
            amd=None if amd is None else AmdTuning(**amd.model_dump()),
            voicemail=None if self.voicemail is None else _ask(self.voicemail.tts),
            dialplan_context=None if self.dialplan is None else self.dialplan.context,
        )

    def callback(self) -> StatusCallback | None:
        return None if self.status_callback is None else self.status_callback.callback()


TWO_WAY_FIELDS = tuple(TwoWayFields.model_fields)


def _ask(tts: TtsIn | None) -> SpeechAsk | None:
    return None if tts is None else SpeechAsk(text=tts.text, voice=tts.voice)


class CampaignTwoWayFields(TwoWayFields):
    """A campaign's replies and voicemail message are said as written: a {{placeholder}} in
    them would be read out, so it is refused."""

    @field_validator("on_digits")
    @classmethod
    def _literal_replies(cls, value: dict[str, ReplyIn] | None) -> dict[str, ReplyIn] | None:
        for key, reply in (value or {}).items():
            _literal(reply.tts, f"on_digits {key!r}")
        return value

    @field_validator("voicemail")
    @classmethod
    def _literal_voicemail(cls, value: VoicemailIn | None) -> VoicemailIn | None:
        _literal(value.tts if value else None, "voicemail")
        return value


def _literal(tts: TtsIn | None, where: str) -> None:
    if tts is not None and Template(tts.text).variables:
        raise refused(
            "placeholders-not-supported",
            f"the {where} text holds a {{{{placeholder}}}}: only the message fills them in",
        )


class RowTwoWayIn(CampaignTwoWayFields):
    """A bulk row's two-way fields over its campaign's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _speech_shape(speech: Speech | None) -> dict[str, str] | None:
    return None if speech is None else {"text": speech.text, "voice": speech.voice}


def interaction_shape(interaction: Interaction) -> dict[str, Any]:
    """What a call (or a campaign's defaults) asked, in the request's own shape; null where
    nothing was asked."""
    gather, amd = interaction.gather, interaction.amd
    return {
        "gather": None if gather is None else asdict(gather),
        "on_digits": {
            key: {"tts": _speech_shape(reply.speech), "action": "dnc" if reply.dnc else None}
            for key, reply in sorted(interaction.on_digits.items())
        }
        or None,
        "machine_detection": None
        if interaction.machine_detection is None
        else interaction.machine_detection.value,
        "amd": None if amd is None else asdict(amd),
        "voicemail": None if interaction.voicemail is None else {"tts": _speech_shape(interaction.voicemail)},
        "dialplan": None
        if interaction.dialplan_context is None
        else {"context": interaction.dialplan_context},
    }


def callback_shape(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored StatusCallback.to_json() as asked (its events spelled out)."""
    return None if not stored else {"url": stored["url"], "events": list(stored["events"])}


OBJECT_FIELDS = frozenset({"gather", "on_digits", "amd", "voicemail", "dialplan", "status_callback"})


class RowTwoWay:
    """Reads a bulk row's two-way fields over its campaign's defaults: each field the row
    gives replaces the default's (null removes it), and the result is checked as a call's
    body is. A CSV cell holds an object field as JSON text, and `null` to remove a default."""

    def __init__(self, allow: AllowList, *, cells_are_text: bool) -> None:
        self._context = validation_context(allow, remember_urls=True)
        self._cells_are_text = cells_are_text
        self._defaults: tuple[Interaction, StatusCallback | None, dict[str, Any]] | None = None

    def __call__(
        self, fields: Mapping[str, Any], defaults: Interaction, callback: StatusCallback | None
    ) -> tuple[InteractionRequest, StatusCallback | None]:
        merged = {**self._shape(defaults, callback), **{k: self._cell(k, v) for k, v in fields.items()}}
        try:
            parsed = RowTwoWayIn.model_validate(merged, context=self._context)
        except ValidationError as exc:
            field, code, message = first_refusal(exc)
            raise RowError(field, message, code) from exc
        return parsed.interaction_request(), parsed.callback()

    def _shape(self, defaults: Interaction, callback: StatusCallback | None) -> dict[str, Any]:
        """The defaults in the request's shape; an upload's rows share one campaign's."""
        if self._defaults is None or self._defaults[:2] != (defaults, callback):
            shape = interaction_shape(defaults)
            shape["status_callback"] = None if callback is None else callback_shape(callback.to_json())
            self._defaults = (defaults, callback, shape)
        return self._defaults[2]

    def _cell(self, key: str, value: Any) -> Any:
        """A CSV cell as the JSON value it spells: `null` removes the default."""
        if not (self._cells_are_text and isinstance(value, str)):
            return value
        if value.strip() == "null":
            return None
        if key not in OBJECT_FIELDS:
            return value
        try:
            return json_text.loads(value)
        except ValueError as exc:
            raise RowError(key, f"holds no JSON object: {json_text.reason(exc)}") from exc
