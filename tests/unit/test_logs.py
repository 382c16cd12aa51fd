"""Service logs: one JSON object per line off a terminal, with the call id on each call's line."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import pytest
import structlog

from orchestrator.logs import configure_logging


class _Stream(io.TextIOWrapper):
    def __init__(self, tty: bool) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def text(self) -> str:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue().decode()


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _log_one(monkeypatch: pytest.MonkeyPatch, stream: _Stream, json_: bool | None) -> str:
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info", json_)
    call_id = uuid.uuid4()
    structlog.get_logger("test").info("call.status", call_id=str(call_id), status="ringing")
    structlog.get_logger("test").debug("dropped: below the level")
    return str(call_id)


def test_off_a_terminal_each_line_is_a_json_object_with_the_call_id(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=False)
    call_id = _log_one(monkeypatch, stream, None)
    lines = stream.text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["event"] == "call.status" and line["call_id"] == call_id
    assert line["status"] == "ringing" and line["level"] == "info" and line["timestamp"].endswith("Z")


def test_at_a_terminal_lines_are_for_people_unless_json_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=True)
    call_id = _log_one(monkeypatch, stream, None)
    text = stream.text()
    assert "call.status" in text and f"call_id={call_id}" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])

    stream = _Stream(tty=True)
    call_id = _log_one(monkeypatch, stream, True)
    assert json.loads(stream.text().splitlines()[0])["call_id"] == call_id


def test_a_value_json_cannot_hold_is_written_as_its_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=False)
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info", True)
    structlog.get_logger("test").info("odd", value={1, 2})
    assert json.loads(stream.text())["value"] in ("{1, 2}", "{2, 1}")


def test_a_request_aiohttp_cannot_parse_is_one_warning_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from aiohttp.http_exceptions import BadHttpMessage

    stream = _Stream(tty=False)
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info", True)
    try:
        raise BadHttpMessage("Invalid header value char:\n\n  b'X-Probe: \\x00'")
    except BadHttpMessage:
        logging.getLogger("aiohttp.server").exception("Error handling request from 127.0.0.1")
    lines = [json.loads(line) for line in stream.text().splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [("api.bad_http_request", "warning")]
    assert "Traceback" not in stream.text() and "Invalid header value char" in lines[0]["error"]
