"""Keyset pages of the listings: a cursor names the last row given (created_at, id), so a
page stays right however many rows arrive meanwhile."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from orchestrator.domain.errors import ValidationFailed

Row = dict[str, Any]


def decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    if not cursor:
        return None
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        return datetime.fromisoformat(at), UUID(ident)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(
            "not a cursor this API gave out", field="cursor", code="invalid-cursor"
        ) from exc


def encode_cursor(row: Row) -> str:
    raw = json.dumps([row["created_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def page(rows: list[Row], limit: int) -> tuple[list[Row], str | None]:
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1])
    return rows, None
