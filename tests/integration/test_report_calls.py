"""`sespcl report` of a real campaign, placed through the running stack: 12 appointment reminders,
all at once, to SIPp far ends that press 1 or 4 during the prompt (RFC 4733), answer and stay
silent, answer busy (each call tried twice), ring until the ring timeout, or answer 503. The CSV
must say what the API says of each call; the chart must be drawn from those same calls."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.domain.call import CallStatus
from orchestrator.domain.report import CSV_COLUMNS, NO_KEY, KeyBar, shape_report
from orchestrator.persistence.db import connect
from orchestrator.persistence.report import ReportStore
from tests.integration.cli import carrier_trunk, sespcl
from tests.integration.conftest import nanp_numbers, wait_final

# far end's trunk → calls to it, and what each ends as: (status, digits, attempts)
PLAN: dict[str, tuple[int, tuple[str, str, int]]] = {
    "t-report-press1": (3, ("completed", "1", 1)),
    "t-report-press4": (2, ("completed", "4", 1)),
    "demo": (2, ("completed", "", 1)),  # answers and says nothing: the gather hears no key
    "busy": (2, ("busy", "", 2)),  # retried once after busy, 1 s later
    "noanswer": (2, ("no-answer", "", 1)),
    "unavailable": (1, ("failed", "", 1)),
}
CALLS = sum(count for count, _ in PLAN.values())


@pytest.fixture(scope="module")
def far_ends() -> Iterator[None]:
    """Two callees who press a key 2 s into the answer, on addresses of their own."""
    with (
        carrier_trunk("t-report-press1", "127.0.30.61", "dtmf", digit="1"),
        carrier_trunk("t-report-press4", "127.0.30.62", "dtmf", digit="4"),
    ):
        yield


@pytest.fixture(scope="module")
async def placed(api: httpx.AsyncClient, far_ends: None) -> tuple[str, dict[str, dict[str, Any]]]:
    """The campaign's id and its calls once final, by number, as the API shows them."""
    created = await api.post(
        "/v1/campaigns",
        json={
            "name": "Lakeside Clinic reminders (report test)",
            "defaults": {
                "tts": {
                    "text": "Hello {{name}}, your appointment is on Tuesday at 9:30. Press 1 to confirm."
                },
                "ring_timeout_s": 5,
                "gather": {"num_digits": 1, "timeout_s": 3, "retries": 0},
                "on_digits": {
                    "1": {"tts": {"text": "Thank you, your appointment is confirmed."}},
                    "4": {"tts": {"text": "We will call you to find another time."}},
                },
                "max_attempts": 2,
                "retry_on": ["busy"],
                "retry_backoff_s": 1,
            },
        },
    )
    assert created.status_code == 201, created.text
    campaign: str = created.json()["id"]
    numbers = iter(nanp_numbers(CALLS))
    rows = [
        {"to": next(numbers), "name": name, "trunk": trunk}
        for trunk, (count, _) in PLAN.items()
        for name in ("Maria Lopez", "Tom Becker", "Aiko Tanaka")[:count]
    ]
    uploaded = await api.post(
        f"/v1/campaigns/{campaign}/calls",
        content="\n".join(json.dumps(row) for row in rows).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert uploaded.status_code == 202 and uploaded.json()["accepted"] == CALLS, uploaded.text
    listed = (await api.get("/v1/calls", params={"campaign": campaign, "limit": "100"})).json()["calls"]
    assert len(listed) == CALLS
    finals = await asyncio.gather(*(wait_final(api, call["id"], timeout=120) for call in listed))
    return campaign, {call["to"]: call for call in finals}


def _report(campaign: str, target: Path) -> Path:
    """`sespcl report` run as an operator would; the file it wrote."""
    result = sespcl("report", campaign, "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "no temp file left"
    return target


def test_the_csv_says_what_the_api_says_of_each_call(
    placed: tuple[str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    campaign, calls = placed
    target = _report(campaign, tmp_path / "reminders.csv")
    with target.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == list(CSV_COLUMNS)
    assert len(rows) == CALLS
    for number, status, answered_by, digits, attempts, duration, cause in rows:
        call = calls[number]
        assert (status, digits, int(attempts)) == PLAN[call["trunk"]][1], call
        assert status == call["status"] and digits == (call["digits"] or "")
        assert answered_by == (call["answered_by"] or "")
        assert int(attempts) == len(call["attempts"])
        assert duration == ("" if call["duration_s"] is None else str(call["duration_s"]))
        assert cause == ("" if call["hangup_cause"] is None else str(call["hangup_cause"]["code"]))
        if status == "completed":
            assert float(duration) > 0.5, call
        if status == "busy":
            assert cause == "17", call


def test_the_chart_is_drawn_from_the_campaigns_calls(
    placed: tuple[str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    campaign, _ = placed
    data = _report(campaign, tmp_path / "reminders.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", data[16:24]) == (1400, 900)

    # What the command drew, read the way it reads it.
    with connect(os.environ["DATABASE_URL"], "sespcl-test") as conn:
        report = shape_report(ReportStore(conn).figures(uuid.UUID(campaign)))
    assert dict(report.totals.by_status) == {
        CallStatus.COMPLETED: 7,
        CallStatus.BUSY: 2,
        CallStatus.NO_ANSWER: 2,
        CallStatus.FAILED: 1,
    }
    assert report.totals.answered == 7 and report.totals.dialed == CALLS
    assert sum(sum(series) for series in report.timeline.calls.values()) == CALLS
    assert sum(report.hourly.attempts) == CALLS + 2, "the busy calls were dialed twice"
    assert sum(report.hourly.answered) == 7
    assert report.keys == (KeyBar("1", 3), KeyBar("4", 2), KeyBar(NO_KEY, 2))
