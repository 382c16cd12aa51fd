"""Prompts from segments: a message template split into its fixed text and its variables, each
spoken piece rendered once and shared by every call that says it. Pure: no I/O.

A variable typed in the template (`{{code|digits}}`, `{{amount|number}}`, `{{when|time}}`,
`{{when|date}}`) is spoken as words from a small closed set ("four", "twenty", "December",
"seventh", "p m"), so a million different codes need no render of their own: the set is rendered
once per voice and shared. A plain `{{name}}` is spoken as its value, one render per distinct
value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import lru_cache

from num2words import num2words

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*(?:\|\s*([A-Za-z]+)\s*)?\}\}")
"""`{{name}}` or `{{name|type}}`: the only syntax a template has; nothing else is evaluated."""
MAX_PIECES = 40
"""Pieces one call may play: the node's Playback argument holds all their paths."""
_SPOKEN = re.compile(r"\w", re.UNICODE)
_WORD_SPLIT = re.compile(r"[\s,\-]+")
_DIGIT_SEPARATORS = re.compile(r"[\s\-.]")
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_MAX_NUMBER = Decimal(10) ** 15
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class SlotType(str, Enum):
    TEXT = "text"
    DIGITS = "digits"
    NUMBER = "number"
    TIME = "time"
    DATE = "date"


class TtsMode(str, Enum):
    SEGMENTS = "segments"
    """Fixed text, values and typed words rendered apart and played in order: scales."""
    WHOLE = "whole"
    """Every call's text rendered whole: natural prosody, one render per distinct text."""


class SlotValueError(ValueError):
    """A row's value that its slot's type cannot speak; `slot` names the variable."""

    def __init__(self, slot: str, message: str) -> None:
        super().__init__(message)
        self.slot = slot


@dataclass(frozen=True)
class Slot:
    name: str
    type: SlotType


Part = str | Slot


def parse_parts(text: str) -> tuple[Part, ...]:
    """The template's literal texts and slots, in order; raises ValueError for an unknown type."""
    parts: list[Part] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        type_name = (match.group(2) or SlotType.TEXT.value).lower()
        try:
            slot_type = SlotType(type_name)
        except ValueError:
            known = ", ".join(t.value for t in SlotType if t is not SlotType.TEXT)
            raise ValueError(f"{{{{{match.group(1)}|{type_name}}}}}: unknown type; one of {known}") from None
        parts.append(Slot(match.group(1), slot_type))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def speaks_english(voice: str) -> bool:
    """Typed values are spoken as English words: only an English voice says them right."""
    return voice.rsplit("/", 1)[-1].lower().startswith("en")


def typed_slots(parts: tuple[Part, ...]) -> tuple[Slot, ...]:
    return tuple(p for p in parts if isinstance(p, Slot) and p.type is not SlotType.TEXT)


def spoken_pieces(parts: tuple[Part, ...], values: Mapping[str, str]) -> list[str]:
    """The texts a call says, in order: each literal (unless it says nothing, as a lone
    punctuation mark), each plain value, and a typed value's words. Raises SlotValueError."""
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            if _SPOKEN.search(part):
                pieces.append(part.strip())
            continue
        value = values[part.name].strip()
        if part.type is SlotType.TEXT:
            if _SPOKEN.search(value):
                pieces.append(value)
            continue
        pieces.extend(typed_words(part, value))
    if len(pieces) > MAX_PIECES:
        raise SlotValueError(
            "tts.text", f"the message says {len(pieces)} pieces once filled in; at most {MAX_PIECES}"
        )
    return pieces


def typed_words(slot: Slot, value: str) -> list[str]:
    """A typed value as words of the closed set; raises SlotValueError naming the slot."""
    try:
        if slot.type is SlotType.DIGITS:
            return _digits(value)
        # Copies: the cached lists are shared.
        if slot.type is SlotType.NUMBER:
            return list(_number(value))
        if slot.type is SlotType.TIME:
            return list(_time(value))
        return list(_date(value))
    except ValueError as exc:
        raise SlotValueError(slot.name, f"{{{{{slot.name}|{slot.type.value}}}}}: {exc}") from None


def _words(spoken: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(spoken) if w and w != "and"]


_DIGIT_WORDS = {str(d): str(num2words(d)) for d in range(10)}


def _digits(value: str) -> list[str]:
    digits = _DIGIT_SEPARATORS.sub("", value)
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 32:
        raise ValueError("must be 1 to 32 digits (spaces, dots and dashes allowed between them)")
    return [_DIGIT_WORDS[d] for d in digits]


# num2words takes tens of microseconds a call: a million rows repeat the same amounts, times and
# dates, so each is said once per process.
@lru_cache(maxsize=20_000)
def _number(value: str) -> list[str]:
    try:
        number = Decimal(value.replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise ValueError("must be a number, e.g. 1250 or 42.50") from None
    if not number.is_finite() or abs(number) >= _MAX_NUMBER:
        raise ValueError("must be a finite number below a quadrillion")
    words = ["minus"] if number < 0 else []
    whole, _, fraction = format(abs(number), "f").partition(".")
    words += _words(num2words(int(whole)))
    if fraction.strip("0"):
        words.append("point")
        words += [num2words(int(d)) for d in fraction.rstrip("0")]
    return words


@lru_cache(maxsize=20_000)
def _time(value: str) -> list[str]:
    match = _CLOCK.fullmatch(value)
    try:
        at = time(int(match[1]), int(match[2])) if match else None
    except ValueError:
        at = None
    if at is None:
        raise ValueError("must be a time of day, H:MM or HH:MM (24-hour)")
    hour = at.hour % 12 or 12
    words = _words(num2words(hour))
    if at.minute == 0:
        words.append("o'clock")
    else:
        if at.minute < 10:
            words.append("oh")
        words += _words(num2words(at.minute))
    words.append("a m" if at.hour < 12 else "p m")
    return words


@lru_cache(maxsize=20_000)
def _date(value: str) -> list[str]:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date, YYYY-MM-DD") from None
    return [
        _WEEKDAYS[day.weekday()],
        _MONTHS[day.month - 1],
        *_words(num2words(day.day, to="ordinal")),
        *_words(num2words(day.year, to="year")),
    ]
