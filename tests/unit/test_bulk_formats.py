import json
from collections.abc import AsyncIterator

import pytest

from orchestrator.api.bulk_formats import BodyTooLarge, MalformedBody, csv_rows, json_array_rows, ndjson_rows
from orchestrator.domain.campaign import RowError


class FakeStream:
    """What the readers use of aiohttp's StreamReader, fed from bytes in small chunks."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._data, self._chunk, self._at = data, chunk, 0

    async def read(self, n: int = -1) -> bytes:
        size = self._chunk if n < 0 else min(n, self._chunk)
        out = self._data[self._at : self._at + size]
        self._at += len(out)
        return out

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while chunk := await self.read(n):
            yield chunk


async def _collect(reader, data: bytes, limit: int = 10_000) -> list[tuple[int, object]]:  # type: ignore[no-untyped-def]
    return [row async for row in reader(FakeStream(data), limit)]


async def test_ndjson_lines_numbered_and_bad_lines_reported() -> None:
    rows = await _collect(ndjson_rows, b'{"to": "+1"}\n\n{oops\n[1]\r\n{"to": "+2"}')
    assert [line for line, _ in rows] == [1, 3, 4, 5]
    assert isinstance(rows[1][1], RowError) and isinstance(rows[2][1], RowError)
    assert rows[3][1] == {"to": "+2"}


async def test_ndjson_non_standard_numbers_are_row_errors() -> None:
    rows = await _collect(ndjson_rows, b'{"to": NaN}\n{"n": ' + b"9" * 5000 + b'}\n{"to": "+3"}')
    assert [type(v) for _, v in rows] == [RowError, RowError, dict]


async def test_csv_header_and_field_counts() -> None:
    rows = await _collect(csv_rows, b'to,name\n+1,"Ann, Jr"\n+2\n+3,Bob\n')
    assert rows[0] == (2, {"to": "+1", "name": "Ann, Jr"})
    assert rows[1][0] == 3 and isinstance(rows[1][1], RowError)
    assert rows[2] == (4, {"to": "+3", "name": "Bob"})
    missing_to = await _collect(csv_rows, b"number,name\n+1,Ann\n")
    assert len(missing_to) == 1 and isinstance(missing_to[0][1], RowError) and missing_to[0][1].field == "to"


async def test_json_array_streams_elements() -> None:
    data = json.dumps([{"to": "+1"}, 5, {"to": "+2", "n": 1.5}]).encode()
    rows = await _collect(json_array_rows, data)
    assert rows[0] == (1, {"to": "+1"}) and isinstance(rows[1][1], RowError) and rows[2][0] == 3


@pytest.mark.parametrize("data", [b'{"to": "+1"}', b'  [{"to": "+1"}, {"to": ', b"[{]"])
async def test_json_that_is_not_a_whole_array_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedBody):
        await _collect(json_array_rows, data)


@pytest.mark.parametrize("reader", [ndjson_rows, csv_rows, json_array_rows])
async def test_size_limit_while_streaming(reader) -> None:  # type: ignore[no-untyped-def]
    big = b"[" + b",".join(b'{"to": "+14155550123"}' for _ in range(100)) + b"]"
    if reader is csv_rows:
        big = b"to\n" + b"+14155550123\n" * 200
    with pytest.raises(BodyTooLarge):
        await _collect(reader, big, limit=500)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"to": "+14155550123", "ring_timeout_s": float("inf")}, "ring_timeout_s"),
        ({"to": "+14155550123", "ring_timeout_s": 4}, "ring_timeout_s"),
        ({"to": "+14155550123", "tz": "Europe"}, "tz"),
        ({"to": "+14155550123", "tz": 3}, "tz"),
        ({"to": "+14155550123", "colour": "red"}, "colour"),
    ],
)
def test_bad_row_values_are_row_errors_naming_the_field(row: dict[str, object], field: str) -> None:
    from orchestrator.domain.campaign import CampaignDefaults, RowParser, Template

    defaults = CampaignDefaults(
        trunk="demo", from_=None, template=Template("Hi."), voice="en-us", ring_timeout_s=30
    )
    with pytest.raises(RowError) as info:
        RowParser(defaults, frozenset({"demo"})).parse(row)
    assert info.value.field == field


def test_a_row_may_name_the_callee_zone() -> None:
    from orchestrator.domain.campaign import CampaignDefaults, RowParser, Template

    defaults = CampaignDefaults(
        trunk="demo", from_=None, template=Template("Hi."), voice="en-us", ring_timeout_s=30
    )
    parsed = RowParser(defaults, frozenset({"demo"})).parse({"to": "+79123456789", "tz": " Europe/Moscow "})
    assert parsed.tz == "Europe/Moscow"
