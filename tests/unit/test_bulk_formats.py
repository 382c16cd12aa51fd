import json
from typing import Any

import pytest

from orchestrator.api.body_stream import BodyStream, BodyTooLarge
from orchestrator.api.bulk_formats import Reader, csv_rows, json_array_rows, ndjson_rows
from orchestrator.api.framing import BOM, ArraySplitter, LineSplitter, MalformedBody, RowTooLong
from orchestrator.api.json_text import MAX_DEPTH
from orchestrator.domain.campaign import RowError

ROWS = [
    {"to": "+14152012345", "name": "Zoë", "day": "Monday"},
    {"to": "+14152012346", "name": "Ann, Jr", "day": "Tuesday € ✓ 🎉"},
]


class FakeStream:
    """What the readers use of aiohttp's StreamReader, fed from bytes in small chunks."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._data, self._chunk, self._at = data, chunk, 0

    async def read(self, n: int = -1) -> bytes:
        size = self._chunk if n < 0 else min(n, self._chunk)
        out = self._data[self._at : self._at + size]
        self._at += len(out)
        return out


def _body(data: bytes, chunk: int = 7, limit: int = 10_000) -> BodyStream:
    return BodyStream(FakeStream(data, chunk), most=limit, idle_s=5)


async def _collect(
    reader: Reader, data: bytes, limit: int = 100_000, *, chunk: int = 7, row_limit: int = 65536
) -> list[tuple[int, Any]]:
    return [row async for row in reader(_body(data, chunk, limit), row_limit)]


def _formats(rows: list[dict[str, str]]) -> dict[Reader, bytes]:
    """The same rows as a JSON array, NDJSON and CSV, with CRLF line breaks."""
    header = list(rows[0])
    csv_lines = [",".join(header)] + [",".join(f'"{r[k]}"' for k in header) for r in rows]
    return {
        json_array_rows: json.dumps(rows, indent=2, ensure_ascii=False).replace("\n", "\r\n").encode(),
        ndjson_rows: "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows).encode(),
        csv_rows: "\r\n".join(csv_lines).encode() + b"\r\n",
    }


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
    data = json.dumps([{"to": "+1"}, 5, {"to": "+2", "n": 1.5}, {"m": {"k": [1, "],}"]}}]).encode()
    rows = await _collect(json_array_rows, data)
    assert rows[0] == (1, {"to": "+1"}) and isinstance(rows[1][1], RowError) and rows[2][0] == 3
    assert rows[3] == (4, {"m": {"k": [1, "],}"]}})


@pytest.mark.parametrize("data", [b"", b"[]", b" [ ]\r\n", BOM + b"[]"])
async def test_an_empty_json_array_has_no_rows(data: bytes) -> None:
    if data == b"":
        with pytest.raises(MalformedBody):
            await _collect(json_array_rows, data)
    else:
        assert await _collect(json_array_rows, data) == []


@pytest.mark.parametrize(
    "data",
    [
        b'{"to": "+1"}',
        b'  [{"to": "+1"}, {"to": ',
        b"[{]",
        b"[{}}",
        b'[{"to": "+1"},]',
        b'[{"to": "+1"},,{"to": "+2"}]',
        b'[{"to": "+1"} {"to": "+2"}]',
        b'[{"to": "+1"}] {"to": "+2"}',
        b'[{"to": "+1"}]]',
        b"[1]]",
        b'[{"to": "+1"}]}',
        b'[{"to": NaN}]',
        b"   \n\t ",
        BOM,
    ],
)
async def test_json_that_is_not_a_whole_array_is_refused(data: bytes) -> None:
    for chunk in (1, 7, 4096):
        with pytest.raises(MalformedBody):
            await _collect(json_array_rows, data, chunk=chunk)


@pytest.mark.parametrize("reader", [ndjson_rows, csv_rows, json_array_rows])
async def test_size_limit_while_streaming(reader: Reader) -> None:
    big = b"[" + b",".join(b'{"to": "+14155550123"}' for _ in range(100)) + b"]"
    if reader is csv_rows:
        big = b"to\n" + b"+14155550123\n" * 200
    with pytest.raises(BodyTooLarge):
        await _collect(reader, big, limit=500)


@pytest.mark.parametrize("prefix", [b" ", b"\n", b"\r\n\t  \n", BOM, BOM + b" \r\n"])
@pytest.mark.parametrize("chunk", [1, 2, 7, 65536])
async def test_white_space_and_a_byte_order_mark_before_the_rows(prefix: bytes, chunk: int) -> None:
    for reader, data in _formats(ROWS).items():
        rows = await _collect(reader, prefix + data, chunk=chunk)
        assert [row for _, row in rows] == ROWS, (reader.__name__, rows)


async def test_white_space_between_elements_is_not_held() -> None:
    data = b"[" + b" \n" * 50_000 + json.dumps(ROWS[0]).encode() + b",\n" + b" " * 100_000 + b"{}]"
    rows = await _collect(json_array_rows, data, limit=1 << 20, chunk=4096, row_limit=4096)
    assert rows == [(1, ROWS[0]), (2, {})]


async def test_chunk_boundaries_anywhere_inside_crlf_and_utf8_characters() -> None:
    """Every split point of the body, including between "\\r" and "\\n" and inside "ë", "€",
    "🎉", gives the same rows as the whole body at once."""
    for reader, data in _formats(ROWS).items():
        whole = await _collect(reader, data, chunk=len(data))
        assert [row for _, row in whole] == ROWS
        for chunk in range(1, 40):
            assert await _collect(reader, data, chunk=chunk) == whole, (reader.__name__, chunk)


@pytest.mark.parametrize(
    ("reader", "data", "what", "number"),
    [
        (ndjson_rows, b'{"to": "+14152012345"}\n\n{"to": "' + b"x" * 5000 + b'"}\n', "line", 3),
        (csv_rows, b"to,name\r\n+14152012345,Ann\r\n+14152012346," + b"x" * 5000, "line", 3),
        (json_array_rows, b'[{"to": "+14152012345"},\n {"to": "' + b"x" * 5000 + b'"}]', "element", 2),
        (json_array_rows, b'[{"to": "+1"}, {"m": {"k": "' + b"y" * 5000 + b'"}}]', "element", 2),
        (json_array_rows, b'[{"to": "+14152012345"}' + b" " * 5000 + b"]", "element", 1),
    ],
)
async def test_a_row_longer_than_the_limit_refuses_the_upload_naming_it(
    reader: Reader, data: bytes, what: str, number: int
) -> None:
    for chunk in (1, 100, 65536):
        with pytest.raises(RowTooLong) as info:
            await _collect(reader, data, chunk=chunk, row_limit=4096)
        assert (info.value.what, info.value.number) == (what, number)
        assert f"{what} {number} " in str(info.value)


async def test_a_line_of_exactly_the_limit_is_read() -> None:
    line = b'{"to": "+14152012345", "pad": "' + b"p" * 100 + b'"}'
    for ending in (b"\n", b"\r\n", b""):
        rows = await _collect(ndjson_rows, line + ending, row_limit=len(line), chunk=3)
        assert rows == [(1, {"to": "+14152012345", "pad": "p" * 100})]
    with pytest.raises(RowTooLong):
        await _collect(ndjson_rows, line + b"\n", row_limit=len(line) - 1, chunk=3)


@pytest.mark.parametrize("chunk", [1, 3, 64, 4096, 65536])
def test_a_huge_line_is_refused_holding_at_most_the_limit(chunk: int) -> None:
    """A 16 MiB line, fed in any chunk size, is refused once the limit is passed: the splitter
    holds at most the limit (and a "\\r"), and steps over each byte fed to it once."""
    limit = 64 * 1024
    data = b"x" * (16 * 1024 * 1024)
    lines, fed = LineSplitter(limit), 0
    with pytest.raises(RowTooLong):
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            fed += len(piece)
            lines.feed(piece)
    assert fed <= limit + 1 + chunk
    assert lines.held <= limit + 1
    assert lines.scanned == fed


@pytest.mark.parametrize("chunk", [1, 3, 64, 4096, 65536])
def test_a_huge_array_element_is_refused_holding_at_most_the_limit(chunk: int) -> None:
    limit = 64 * 1024
    data = b'[{"to": "+14152012345"}, {"to": "' + b"\\\\x" * (6 * 1024 * 1024) + b'"}]'
    elements, fed = ArraySplitter(limit), 0
    with pytest.raises(RowTooLong) as info:
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            fed += len(piece)
            elements.feed(piece)
    assert info.value.number == 2
    assert fed <= limit + 64 + chunk
    assert elements.held <= limit + 1
    assert elements.scanned <= fed


@pytest.mark.parametrize("chunk", [1, 5, 4096, 1 << 20])
def test_splitting_steps_over_each_byte_once(chunk: int) -> None:
    """Many short rows and a few long ones (flat, nested, with escapes): the work done is the
    size of the body, whatever the chunks, and nothing held outgrows one row."""
    rows: list[dict[str, Any]] = [
        {"to": f"+1415201{i:04d}", "name": 'A\\"n,]}', "m": {"k": [i, {"q": "ë" * (i % 50)}]}}
        for i in range(300)
    ]
    rows += [{"to": "+14152019999", "pad": "z" * 3000}]
    data = json.dumps(rows).encode()
    ndjson = b"\n".join(json.dumps(r).encode() for r in rows)
    elements, lines = ArraySplitter(4096), LineSplitter(4096)
    got: list[tuple[int, bytes]] = []
    got_lines: list[tuple[int, bytes]] = []
    for start in range(0, max(len(data), len(ndjson)), chunk):
        got += elements.feed(data[start : start + chunk])
        got_lines += lines.feed(ndjson[start : start + chunk])
    got += elements.close()
    got_lines += lines.close()
    assert [json.loads(raw) for _, raw in got] == [json.loads(raw) for _, raw in got_lines] == rows
    assert elements.scanned <= len(data) and lines.scanned == len(ndjson)
    assert elements.held <= 4097 and lines.held <= 4097


async def test_deep_nesting_is_refused_before_it_is_parsed() -> None:
    """Nesting is refused at level MAX_DEPTH + 1, before the value is parsed: in a JSON array the
    whole upload, in an NDJSON line that row."""
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedBody, match=f"nested deeper than {MAX_DEPTH}"):
        await _collect(json_array_rows, b"[" + deep + b"]", limit=1 << 20, chunk=65536, row_limit=1 << 20)
    with pytest.raises(MalformedBody, match=f"nested deeper than {MAX_DEPTH}"):
        await _collect(json_array_rows, b"[" + _nested(MAX_DEPTH + 1) + b"]")
    [(number, deepest)] = await _collect(json_array_rows, b"[" + _nested(MAX_DEPTH) + b"]")
    assert number == 1 and isinstance(deepest, RowError) and "must be an object" in deepest.message
    rows = await _collect(
        ndjson_rows,
        b"\n".join(
            [
                b'{"to": "+14152012345", "a": ' + _nested(MAX_DEPTH - 1) + b"}",
                b'{"to": "+14152012345", "a": ' + _nested(MAX_DEPTH) + b"}",
                b"[" * 60_000,
                _nested(30_000),
            ]
        ),
        limit=1 << 20,
        row_limit=65536,
        chunk=4096,
    )
    assert rows[0] == (1, {"to": "+14152012345", "a": json.loads(_nested(MAX_DEPTH - 1))})
    assert [line for line, _ in rows[1:]] == [2, 3, 4]
    assert all(isinstance(row, RowError) and "nested deeper" in row.message for _, row in rows[1:])


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth
