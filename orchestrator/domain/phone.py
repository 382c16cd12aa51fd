"""E.164 numbers: the only form a number may take before it goes near Asterisk."""

from __future__ import annotations

import re

import phonenumbers

_E164_SHAPE = re.compile(r"^\+[1-9][0-9]{1,14}$")


def parse_e164(value: str) -> str:
    """Return `value` if it is a valid E.164 number, else raise ValueError saying why.

    The shape check comes first so nothing but '+' and digits can pass, whatever the parser allows.
    """
    if not _E164_SHAPE.fullmatch(value):
        raise ValueError("must be an E.164 number: '+' then 2 to 15 digits, e.g. +14155550123")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
