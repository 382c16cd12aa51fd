"""Streaming readers for bulk uploads: a JSON array, NDJSON or CSV, never read whole.

Each yields (line, row) where row is a mapping, or (line, RowError) for a row that cannot be
read at all. `line` is the physical line for NDJSON and CSV (the CSV header is line 1) and the
element's position (from 1) for a JSON array.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from typing import Any

import ijson
from aiohttp import StreamReader

from orchestrator.api import json_text
from orchestrator.domain.campaign import RowError

CHUNK = 256 * 1024
Row = tuple[int, dict[str, Any] | RowError]


class BodyTooLarge(Exception):
    pass


class MalformedBody(Exception):
    """The body cannot be read as its media type at all: the upload stores nothing."""


class _CountingStream:
    """Counts bytes as ijson pulls them, refusing past the limit."""

    def __init__(self, stream: StreamReader, limit: int) -> None:
        self._stream, self._limit, self.read_bytes = stream, limit, 0
        self._pending = b""

    async def first_byte(self) -> bytes:
        """The first byte that is not white space, left in place for the parser."""
        while not self._pending.strip():
            chunk = await self.read(CHUNK)
            if not chunk:
                return b""
            self._pending += chunk
        return self._pending.lstrip()[:1]

    async def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson probes with read(0): that must not consume anything
        if self._pending:
            take = len(self._pending) if size is None or size < 0 else size
            data, self._pending = self._pending[:take], self._pending[take:]
            return data
        data = await self._stream.read(CHUNK if size is None or size < 0 else size)
        self.read_bytes += len(data)
        if self.read_bytes > self._limit:
            raise BodyTooLarge()
        return data


async def _lines(stream: StreamReader, limit: int) -> AsyncIterator[tuple[int, str]]:
    seen = 0
    number = 0
    tail = b""
    async for chunk in stream.iter_chunked(CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge()
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        for raw in parts:
            number += 1
            yield number, raw.rstrip(b"\r").decode("utf-8", "replace")
    if tail:
        yield number + 1, tail.rstrip(b"\r").decode("utf-8", "replace")


async def ndjson_rows(stream: StreamReader, limit: int) -> AsyncIterator[Row]:
    async for number, line in _lines(stream, limit):
        if not line.strip():
            continue
        try:
            value = json_text.loads(line)
        except ValueError as exc:
            yield number, RowError(None, f"not valid JSON: {json_text.reason(exc)}")
            continue
        yield number, value if isinstance(value, dict) else RowError(None, "each line must be a JSON object")


async def json_array_rows(stream: StreamReader, limit: int) -> AsyncIterator[Row]:
    counting = _CountingStream(stream, limit)
    if await counting.first_byte() != b"[":
        raise MalformedBody("the body must be a JSON array of row objects")
    number = 0
    try:
        async for value in ijson.items_async(counting, "item", use_float=True):
            number += 1
            yield (
                number,
                value if isinstance(value, dict) else RowError(None, "each element must be an object"),
            )
    except ijson.JSONError as exc:
        # Nothing after the break can be read: refuse the whole upload rather than keep half.
        raise MalformedBody(f"the JSON array breaks after element {number}: {exc}") from exc


async def csv_rows(stream: StreamReader, limit: int) -> AsyncIterator[Row]:
    header: list[str] | None = None
    async for number, line in _lines(stream, limit):
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


READERS = {
    "application/json": json_array_rows,
    "application/x-ndjson": ndjson_rows,
    "text/csv": csv_rows,
}
