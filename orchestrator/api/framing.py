"""Cutting a bulk body, fed in chunks of any size, into its rows' bytes: lines (NDJSON, CSV) or
the elements of one JSON array.

Both splitters hold at most `limit` bytes of an unfinished row and never search a row's bytes
again when more of it arrives, so their work is linear in the body's size however it is
chunked. `scanned` counts the bytes they stepped over, for the tests.

The JSON array is split here rather than by ijson: ijson builds a path string as long as the
depth for every event, so deep nesting costs it memory and time quadratic in the depth, and it
tells no byte positions, so it can bound neither depth nor an element's size before it has
read the element.
"""

from __future__ import annotations

import re

from orchestrator.api.json_text import (
    CLOSERS,
    FLAT_ELEMENT,
    MAX_DEPTH,
    OPENERS,
    QUOTE,
    RUN,
    RUN_TO_COMMA,
    STRING_REST,
    skip,
)

Numbered = list[tuple[int, bytes]]
"""Rows' bytes, each with its line or element number."""

BOM = b"\xef\xbb\xbf"
WHITE = b" \t\r\n"
CR, COMMA = ord("\r"), ord(",")
_PAIR = {ord("]"): ord("["), ord("}"): ord("{")}


class MalformedBody(Exception):
    """The body cannot be read as its media type at all: the upload stores nothing."""


class RowTooLong(Exception):
    """A row longer than the limit: the upload stores nothing."""

    def __init__(self, what: str, number: int, limit: int) -> None:
        super().__init__(f"{what} {number} is longer than {limit} bytes")
        self.what, self.number, self.limit = what, number, limit


class LineSplitter:
    """Lines without their "\\n" or "\\r\\n", numbered from 1; a UTF-8 byte-order mark before
    the first line is dropped. `limit` bounds a line without its line break."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._partial = bytearray()
        self.number = 0
        self.scanned = 0
        self.held = 0
        """The most bytes of an unfinished line held at once (at most limit + 1: its "\\r")."""

    def feed(self, chunk: bytes) -> Numbered:
        lines: Numbered = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self.scanned += end + 1 - start
            last = chunk[end - 1] if end > start else self._partial[-1] if self._partial else None
            if len(self._partial) + end - start - (last == CR) > self._limit:
                raise RowTooLong("line", self.number + 1, self._limit)
            if self._partial:
                self._partial += chunk[start:end]
                lines.append(self._line(bytes(self._partial)))
                self._partial.clear()
            else:
                lines.append(self._line(chunk[start:end]))
            start = end + 1
        self.scanned += len(chunk) - start
        if len(self._partial) + len(chunk) - start > self._limit + 1:
            raise RowTooLong("line", self.number + 1, self._limit)
        self._partial += chunk[start:]
        self.held = max(self.held, len(self._partial))
        return lines

    def close(self) -> Numbered:
        """The last line, when the body does not end with a line break."""
        if not self._partial:
            return []
        if len(self._partial) - (self._partial[-1] == CR) > self._limit:
            raise RowTooLong("line", self.number + 1, self._limit)
        return [self._line(bytes(self._partial))]

    def _line(self, raw: bytes) -> tuple[int, bytes]:
        self.number += 1
        if self.number == 1:
            raw = raw.removeprefix(BOM)
        return self.number, raw.removesuffix(b"\r")


_BEFORE, _INSIDE, _AFTER = range(3)
_WS = re.compile(rb"[ \t\r\n]*")


class ArraySplitter:
    """The elements of one JSON array, as bytes, numbered from 1, for json_text to parse.

    White space (and a byte-order mark) may come before the array and white space after it;
    anything else there, a bracket closed by the other kind, an empty element, or an element
    nested deeper than MAX_DEPTH is MalformedBody: the array cannot be read on from there. An
    element longer than `limit` (white space after it counts, before it does not) is
    RowTooLong."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = bytearray()
        """The current element from its first byte (the white space before it is dropped)."""
        self._pos = 0
        self._open: list[int] = []
        """The brackets open at _pos, the array's own first."""
        self._in_string = False
        self._state = _BEFORE
        self._at_start = True
        self._after_comma = False
        self.number = 0
        self.scanned = 0
        self.held = 0
        """The most bytes held at once (at most limit + 1)."""

    def feed(self, chunk: bytes) -> Numbered:
        elements: Numbered = []
        rest = memoryview(chunk)
        while rest:
            # Take only what the limit leaves room for; what it completes frees room again.
            room = self._limit + 1 - len(self._buf)
            self._buf += rest[:room]
            rest = rest[room:]
            self.held = max(self.held, len(self._buf))
            self._split(elements)
        return elements

    def close(self) -> Numbered:
        if self._state == _BEFORE:
            raise MalformedBody("the body must be a JSON array of row objects")
        if self._state == _INSIDE:
            raise MalformedBody(f"the body ends inside the JSON array, after element {self.number}")
        return []

    def _split(self, elements: Numbered) -> None:
        buf = self._buf
        if self._state == _BEFORE and not self._begin():
            return
        while self._state == _INSIDE:
            if self._pos == 0 and len(self._open) == 1:
                self._flat_elements(elements)
                if self._state != _INSIDE:
                    break
                blank = skip(_WS, buf, 0)
                self.scanned += blank
                del buf[:blank]
            if self._pos >= len(buf) or not self._step(elements):
                break
        if self._state == _AFTER:
            end = skip(_WS, buf, 0)
            self.scanned += end
            if end < len(buf):
                raise MalformedBody(f"the body goes on after the JSON array (of {self.number} elements)")
            buf.clear()
        elif len(buf) > self._limit:
            raise RowTooLong("element", self.number + 1, self._limit)

    def _flat_elements(self, elements: Numbered) -> None:
        """The common rows, flat objects, one match each. Where none matches, the bytes the match
        looked at are the ones _step looks at next: the work stays linear."""
        buf, pos, match = self._buf, 0, FLAT_ELEMENT.match
        while self._state == _INSIDE and (flat := match(buf, pos)) is not None:
            self.number += 1
            elements.append((self.number, bytes(buf[pos : flat.end() - 1]).strip(WHITE)))
            pos = flat.end()
            self._after_comma = buf[pos - 1] == COMMA
            if not self._after_comma:
                self._open.pop()
                self._state = _AFTER
        self.scanned += pos
        del buf[:pos]

    def _begin(self) -> bool:
        """Past the white space (and byte-order mark) to the array's "["; False: not there yet."""
        buf = self._buf
        if self._at_start:
            if len(buf) < len(BOM) and BOM.startswith(buf):
                return False
            self._at_start = False
            if buf.startswith(BOM):
                del buf[: len(BOM)]
        blank = skip(_WS, buf, 0)
        self.scanned += blank
        del buf[:blank]
        if not buf:
            return False
        if buf[0] != ord("["):
            raise MalformedBody("the body must be a JSON array of row objects")
        del buf[:1]
        self.scanned += 1
        self._open.append(ord("["))
        self._state, self._pos = _INSIDE, 0
        return True

    def _step(self, elements: Numbered) -> bool:
        """Scan on from _pos to the next byte that matters; False: the bytes held end first."""
        buf, pos = self._buf, self._pos
        if self._in_string:
            end = skip(STRING_REST, buf, pos)
            self.scanned += end - pos
            self._pos = end
            if end == len(buf) or buf[end] != QUOTE:  # or a "\" whose escaped byte is to come
                return False
            self._in_string = False
            self._pos += 1
            self.scanned += 1
            return True
        end = skip(RUN_TO_COMMA if len(self._open) == 1 else RUN, buf, pos)
        self.scanned += end - pos
        self._pos = end
        if end == len(buf):
            return False
        byte = buf[end]
        self._pos += 1
        self.scanned += 1
        if byte == QUOTE:
            self._in_string = True
        elif byte in OPENERS:
            self._open.append(byte)
            if len(self._open) > MAX_DEPTH + 1:
                raise MalformedBody(f"element {self.number + 1} is nested deeper than {MAX_DEPTH} levels")
        elif byte in CLOSERS:
            if self._open.pop() != _PAIR[byte]:
                raise MalformedBody(
                    f"the JSON array breaks in element {self.number + 1}: a '{chr(byte)}' closes "
                    "what it did not open"
                )
            if not self._open:
                self._element(end, elements, last=True)
        else:  # a comma between elements
            self._element(end, elements, last=False)
        return True

    def _element(self, end: int, elements: Numbered, *, last: bool) -> None:
        raw = bytes(self._buf[:end]).rstrip(WHITE)
        del self._buf[: end + 1]
        self._pos = 0
        if raw:
            self.number += 1
            elements.append((self.number, raw))
        elif not (last and self.number == 0 and not self._after_comma):  # "[]" is an empty array
            raise MalformedBody(f"the JSON array has an empty element after element {self.number}")
        self._after_comma = not last
        if last:
            self._state = _AFTER
