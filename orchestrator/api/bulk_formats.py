"""Streaming readers for bulk uploads: a JSON array, NDJSON or CSV, never read whole.

Each yields (line, row) where row is a mapping, or (line, RowError) for a row that cannot be
read at all. `line` is the physical line for NDJSON and CSV (the CSV header is line 1) and the
element's position (from 1) for a JSON array. A row longer than `row_limit` bytes raises
RowTooLong, a JSON array that cannot be read on MalformedBody: the upload stores nothing.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from typing import Any

from orchestrator.api import json_text
from orchestrator.api.body_stream import BodyStream
from orchestrator.api.framing import ArraySplitter, LineSplitter, MalformedBody
from orchestrator.domain.campaign import RowError

Row = tuple[int, dict[str, Any] | RowError]
Reader = Callable[[BodyStream, int], AsyncIterator[Row]]


async def _lines(body: BodyStream, limit: int) -> AsyncIterator[tuple[int, str]]:
    lines = LineSplitter(limit)
    while chunk := await body.read():
        for number, raw in lines.feed(chunk):
            yield number, raw.decode("utf-8", "replace")
    for number, raw in lines.close():
        yield number, raw.decode("utf-8", "replace")


async def ndjson_rows(body: BodyStream, row_limit: int) -> AsyncIterator[Row]:
    async for number, line in _lines(body, row_limit):
        if not line.strip():
            continue
        try:
            value = json_text.loads(line)
        except ValueError as exc:
            yield number, RowError(None, f"not valid JSON: {json_text.reason(exc)}")
            continue
        yield number, value if isinstance(value, dict) else RowError(None, "each line must be a JSON object")


async def json_array_rows(body: BodyStream, row_limit: int) -> AsyncIterator[Row]:
    elements = ArraySplitter(row_limit)
    while True:
        chunk = await body.read()
        for number, raw in elements.feed(chunk) if chunk else elements.close():
            try:
                value = json_text.loads(raw)
            except ValueError as exc:
                # Nothing after the break can be read: refuse the whole upload rather than keep half.
                raise MalformedBody(
                    f"the JSON array breaks in element {number}: {json_text.reason(exc)}"
                ) from exc
            if not isinstance(value, dict):
                value = RowError(None, "each element must be an object")
            yield number, value
        if not chunk:
            return


async def csv_rows(body: BodyStream, row_limit: int) -> AsyncIterator[Row]:
    header: list[str] | None = None
    async for number, line in _lines(body, row_limit):
        if not line.strip():
            continue
        try:
            values = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            yield (
                number,
                RowError(None, f"not a valid CSV line: {exc} (quoted line breaks are not supported)"),
            )
            continue
        if header is None:
            header = [h.strip() for h in values]
            if "to" not in header:
                yield number, RowError("to", "the header row must have a 'to' column")
                return
            if len(set(header)) != len(header):
                yield number, RowError(None, "the header row repeats a column")
                return
            continue
        if len(values) != len(header):
            yield number, RowError(None, f"{len(values)} fields where the header has {len(header)}")
            continue
        yield number, {k: v for k, v in zip(header, values) if v != "" or k == "to"}


READERS: dict[str, Reader] = {
    "application/json": json_array_rows,
    "application/x-ndjson": ndjson_rows,
    "text/csv": csv_rows,
}
