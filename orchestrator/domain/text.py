"""Checks on free text that will be spoken or stored."""

from __future__ import annotations

import unicodedata


def control_character_position(text: str) -> int | None:
    """Index of the first control or format character (C0, C1, DEL, bidi overrides…), or None."""
    if text.isprintable():  # in C: none of Cc, Cf, Cs, Co, Cn (nor Z* but the space) is there
        return None
    for index, char in enumerate(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return index
    return None
