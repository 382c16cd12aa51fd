"""JSON as the API reads it: standard JSON only. NaN and Infinity are refused (PostgreSQL's jsonb
would refuse them later, as a server error), and every way a text can fail to parse (bad
syntax, bad UTF-8, an integer too long to convert, nesting deeper than MAX_DEPTH) is a
ValueError with a readable message."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
"""Most levels of nested arrays and objects in one value (a body, a row). No request of this API
needs more than a few; the bound keeps every recursive step after parsing (validation, hashing,
jsonb) shallow, and refuses a few kilobytes of brackets before they cost anything."""

# No possessive quantifiers (*+, ++): Python 3.11 before 3.11.5 matches some of them wrongly,
# and Debian 12's is 3.11.2. Each pattern below is written so that backtracking
# cannot help it: RUN, RUN_TO_COMMA, STRING_REST and the white space have nothing after their
# repetition (the first, longest match stands), and FLAT_ELEMENT's loop takes one byte at a
# time, never one a bracket or a quote, so giving bytes back fails at once: linear either way.
_STRING_BODY = rb'[^"\\]*(?:\\.[^"\\]*)*'
"""The inside of a JSON string up to its closing quote."""
_STRING = rb'"' + _STRING_BODY + rb'"'
_WS = rb"[ \t\r\n]*"
STRING_REST = re.compile(_STRING_BODY, re.DOTALL)
RUN = re.compile(rb'(?:[^"\[\]{}]+|' + _STRING + rb")*", re.DOTALL)
"""Everything up to the next bracket outside a string, or up to a string not closed yet."""
RUN_TO_COMMA = re.compile(rb'(?:[^"\[\]{},]+|' + _STRING + rb")*", re.DOTALL)
"""As RUN, stopping at a comma too."""
FLAT_ELEMENT = re.compile(_WS + rb'\{(?:[^"\[\]{}]|' + _STRING + rb")*\}" + _WS + rb"[,\]]", re.DOTALL)
"""An object holding no array or object, with the white space around it and the comma or "]"
after it."""
OPENERS, CLOSERS = frozenset(b"[{"), frozenset(b"]}")
QUOTE = ord('"')


def loads(text: str | bytes) -> Any:
    if _too_deep(text):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        if not isinstance(text, str):  # as json.loads does it (UTF-8, -16 or -32)
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return _DECODER.decode(text)
    except RecursionError as exc:  # not reached past _too_deep; kept so that it is never a 500
        raise ValueError("nested too deeply") from exc


def reason(exc: ValueError) -> str:
    """What was wrong, without the document repeated back."""
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def _too_deep(text: str | bytes) -> bool:
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= MAX_DEPTH:
            return False
        text = text.encode("utf-8", "surrogatepass")
    elif text.count(b"[") + text.count(b"{") <= MAX_DEPTH:
        return False  # the common case: too few brackets to matter, counted at C speed
    depth = pos = 0
    while (pos := skip(RUN, text, pos)) < len(text):
        if text[pos] == QUOTE:
            return False  # a string never closed: json.loads refuses the text itself
        depth += 1 if text[pos] in OPENERS else -1
        if depth > MAX_DEPTH:
            return True
        pos += 1
    return False


def skip(pattern: re.Pattern[bytes], data: bytes | bytearray, pos: int) -> int:
    """Where `pattern` (one of the above: each matches the empty text too) stops, from `pos`."""
    match = pattern.match(data, pos)
    assert match is not None
    return match.end()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
