"""Campaigns: a message template, defaults, and the rows of a bulk upload. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from orchestrator.domain.call import CallStatus
from orchestrator.domain.calling_hours import CallingWindow, zone
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.phone import E164Checker
from orchestrator.domain.retry import RetryPolicy
from orchestrator.domain.segments import (
    Slot,
    SlotValueError,
    TtsMode,
    parse_parts,
    spoken_pieces,
    typed_slots,
)
from orchestrator.domain.text import control_character_position
from orchestrator.domain.webhooks import StatusCallback

MAX_TEXT = 2000
MAX_VARIABLE = 500
ROW_OVERRIDES = frozenset({"from", "trunk", "ring_timeout_s", "tz"})
ROW_TWO_WAY = frozenset(
    {"gather", "on_digits", "machine_detection", "amd", "voicemail", "dialplan", "status_callback"}
)
"""A row's two-way fields: each replaces the campaign's default of that field (null removes it).
Read at the API's edge (api/two_way.py), never taken for message variables."""
_NOT_VARIABLES = frozenset({"to"}) | ROW_OVERRIDES | ROW_TWO_WAY
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class CampaignStatus(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELED = "canceled"


CancelPosition = tuple[datetime, UUID]
"""How far a pass of the background cancel went over a campaign's calls: the last
(created_at, id) it took, in the order it walks them."""


@dataclass(frozen=True)
class CancelProgress:
    """A canceled campaign's queued calls, canceled in the background after the cancel answered."""

    queued_left: int
    """Still queued: counts down to 0 as the background cancel goes."""

    @property
    def done(self) -> bool:
        return self.queued_left == 0

    @classmethod
    def of(cls, status: str, counts: Mapping[str, int]) -> CancelProgress | None:
        """The progress of a campaign's cancel from its calls by status; None unless canceled."""
        if status != CampaignStatus.CANCELED.value:
            return None
        return cls(queued_left=max(0, counts.get(CallStatus.QUEUED.value, 0)))


class RowError(Exception):
    def __init__(self, field: str | None, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field, self.message = field, message
        self.code = code or ("invalid-field" if field else "invalid-row")


class Template:
    """`{{name}}` and `{{name|type}}` placeholders in a message (domain/segments.py); filling
    one in never evaluates anything else."""

    def __init__(self, text: str) -> None:
        position = control_character_position(text)
        if position is not None:
            raise ValueError(f"contains a control character at position {position}")
        if not text.strip() or len(text) > MAX_TEXT:
            raise ValueError(f"must be 1 to {MAX_TEXT} characters")
        self.text = text
        self.parts = parse_parts(text)
        self.variables = frozenset(p.name for p in self.parts if isinstance(p, Slot))
        self.typed = typed_slots(self.parts)

    def render(self, values: Mapping[str, str]) -> str:
        """The message as shown: each value as the row gave it."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.name)
            if value is None:
                raise RowError(part.name, f"missing variable {part.name!r} used by the message")
            out.append(value)
        text = "".join(out)
        if len(text) > MAX_TEXT:
            raise RowError(
                "tts.text", f"the message is {len(text)} characters once filled in; at most {MAX_TEXT}"
            )
        return text

    def pieces(self, values: Mapping[str, str], mode: TtsMode) -> tuple[str, ...]:
        """What is rendered and played, in order: the pieces (segments), or one text that says
        the same words (whole). Call after `render` (which reports a missing variable)."""
        try:
            pieces = spoken_pieces(self.parts, values)
        except SlotValueError as exc:
            raise RowError(exc.slot, str(exc)) from None
        if not pieces:
            raise RowError("tts.text", "the message says nothing once filled in")
        if mode is TtsMode.WHOLE or not self.variables:
            # The words as they would be shown, typed values spelled as the pieces say them.
            return (self.render(values) if not self.typed else " ".join(pieces),)
        return tuple(pieces)


@dataclass(frozen=True)
class CampaignDefaults:
    trunk: str
    from_: str | None
    template: Template
    voice: str
    ring_timeout_s: int
    mode: TtsMode = TtsMode.SEGMENTS


@dataclass(frozen=True, kw_only=True)
class NewCampaign:
    """A campaign with its trunk and voice chosen and its template checked, before it is stored."""

    name: str
    trunk: str
    from_: str | None
    template: str
    voice: str
    ring_timeout_s: int
    cps: float | None = None
    window: CallingWindow | None = None
    expires_at: datetime | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    created_by: str | None = None
    interaction: Interaction = field(default_factory=Interaction)
    status_callback: StatusCallback | None = None
    tts_mode: TtsMode = TtsMode.SEGMENTS


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a µs a row
class BulkRow:
    to: str
    from_: str | None
    trunk: str
    text: str
    ring_timeout_s: int
    tz: str | None = None
    """The callee's IANA zone for calling hours; None: the number's own zones."""
    pieces: tuple[str, ...] = ()
    """What the call says, rendered apart and played in order (Template.pieces); () : `text`."""


class RowParser:
    """Turns one uploaded row (a mapping of strings, or JSON values) into a BulkRow."""

    def __init__(
        self,
        defaults: CampaignDefaults,
        known_trunks: frozenset[str],
        destinations: DestinationPolicy | None = None,
    ) -> None:
        self._defaults = defaults
        self._trunks = known_trunks
        self._e164 = E164Checker()
        self._destinations = destinations or DestinationPolicy(premium=True)

    def parse(self, row: Mapping[str, Any]) -> BulkRow:
        to = row.get("to")
        if not isinstance(to, str) or not to:
            raise RowError("to", "required: an E.164 number")
        try:
            to = self._e164.check(to.strip())
        except ValueError as exc:
            raise RowError("to", str(exc)) from exc
        refusal = self._destinations.refusal(to)
        if refusal is not None:
            raise RowError("to", refusal, "destination-not-allowed")
        variables: dict[str, str] = {}
        for key, value in row.items():
            if key in _NOT_VARIABLES:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise RowError(key, "variables must be strings or numbers")
            text = str(value)
            if len(text) > MAX_VARIABLE or control_character_position(text) is not None:
                raise RowError(key, f"must be at most {MAX_VARIABLE} characters, no control characters")
            variables[key] = text
        unknown = set(variables) - self._defaults.template.variables
        if unknown:
            raise RowError(sorted(unknown)[0], "unknown column: not a variable of the message")
        template = self._defaults.template
        text = template.render(variables)
        return BulkRow(
            to=to,
            from_=self._from(row),
            trunk=self._trunk(row),
            text=text,
            ring_timeout_s=self._ring(row),
            tz=self._tz(row),
            pieces=template.pieces(variables, self._defaults.mode),
        )

    def _from(self, row: Mapping[str, Any]) -> str | None:
        value = row.get("from")
        if value in (None, ""):
            return self._defaults.from_
        if not isinstance(value, str):
            raise RowError("from", "must be an E.164 number")
        try:
            return self._e164.check(value.strip())
        except ValueError as exc:
            raise RowError("from", str(exc)) from exc

    def _trunk(self, row: Mapping[str, Any]) -> str:
        value = row.get("trunk")
        if value in (None, ""):
            return self._defaults.trunk
        if not isinstance(value, str) or not _NAME.fullmatch(value) or value not in self._trunks:
            raise RowError("trunk", f"no trunk named {value!r}")
        return value

    @staticmethod
    def _tz(row: Mapping[str, Any]) -> str | None:
        value = row.get("tz")
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise RowError("tz", "must be an IANA time zone name, e.g. Europe/Moscow")
        try:
            zone(value.strip())
        except ValueError as exc:
            raise RowError("tz", str(exc)) from exc
        return value.strip()

    def _ring(self, row: Mapping[str, Any]) -> int:
        value = row.get("ring_timeout_s")
        if value in (None, ""):
            return self._defaults.ring_timeout_s
        try:
            number = int(value) if not isinstance(value, bool) else -1
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: Infinity
            raise RowError("ring_timeout_s", "must be a whole number of seconds") from exc
        if not 5 <= number <= 120:
            raise RowError("ring_timeout_s", "must be between 5 and 120")
        return number
