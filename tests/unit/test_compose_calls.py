"""The compose test's calls: numbers a carrier would accept, and a verdict that fails on any
call that did not end as its trunk says."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from tests.compose_calls import PlacedCall, callee, report


def test_callees_are_valid_numbers() -> None:
    rng = random.Random(7)
    numbers = [callee(rng) for _ in range(500)]
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(n)) for n in numbers)
    assert len(set(numbers)) > 490


def test_report_fails_on_a_call_that_ended_otherwise_or_never(capsys: pytest.CaptureFixture[str]) -> None:
    calls = [
        PlacedCall(id="a", to="+14152345678", expected="completed"),
        PlacedCall(id="b", to="+14152345679", expected="busy"),
    ]
    attempt = {"node": "n1"}
    assert report(calls, {"a": {"status": "completed", "attempts": [attempt]}, "b": {"status": "busy"}})
    assert not report(calls, {"a": {"status": "completed"}, "b": {"status": "failed"}})
    assert not report(calls, {"a": {"status": "in-progress"}})
    assert "FAILED (expected busy)" in capsys.readouterr().out
