"""schemathesis hooks for the fuzz run (SCHEMATHESIS_HOOKS=tests.integration.fuzz_hooks): the bulk
formats a generated list of rows is sent in. Not a test module: schemathesis imports it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import schemathesis


def _rows(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _as_sent(value: str | bytes) -> bytes:
    """A negative case's text, as it is."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    if isinstance(value, str | bytes):
        return _as_sent(value)
    lines = (json.dumps(row, ensure_ascii=False) for row in _rows(value))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@schemathesis.serializer("text/csv")
def csv_rows(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    if isinstance(value, str | bytes):
        return _as_sent(value)
    rows = [row if isinstance(row, dict) else {"to": row} for row in _rows(value)]
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["to"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue().encode("utf-8", "surrogatepass")
