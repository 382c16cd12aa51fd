"""JSON as the API reads it: standard JSON only. NaN and Infinity are refused (PostgreSQL's jsonb
would refuse them later, as a server error), and every way a text can fail to parse (bad
syntax, bad UTF-8, an integer too long to convert) is a ValueError with a readable message."""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def reason(exc: ValueError) -> str:
    """What was wrong, without the document repeated back."""
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
