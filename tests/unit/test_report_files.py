"""The report's files (report_files.py, report_chart.py): whole or not at all, and a real PNG."""

from __future__ import annotations

import csv
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.domain.call import CallStatus
from orchestrator.domain.report import (
    CSV_COLUMNS,
    CallLine,
    CampaignFigures,
    CampaignHeading,
    DigitsCount,
    EndedInMinute,
    HourAttempts,
    StatusTotal,
    shape_report,
)
from orchestrator.report_chart import DPI, SIZE_INCHES, render_png
from orchestrator.report_files import atomic_file, write_calls_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANSWERED = datetime(2026, 3, 10, 14, 2, 11, tzinfo=UTC)


class DatabaseWentAway(Exception):
    pass


def _lines(count: int) -> Iterator[CallLine]:
    for n in range(count):
        yield CallLine(
            number=f"+1202555{n:04d}",
            status=CallStatus.COMPLETED,
            answered_by="human",
            digits="1",
            attempts=1,
            answered_at=ANSWERED,
            ended_at=ANSWERED + timedelta(seconds=18),
            cause=16,
        )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_csv_has_a_header_then_a_row_per_call(tmp_path: Path) -> None:
    target = tmp_path / "lakeside.csv"
    assert write_calls_csv(_lines(3), target) == 3
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [[f"+1202555{n:04d}", "completed", "human", "1", "1", "18.0", "16"] for n in range(3)]
    assert _leftovers(tmp_path) == ["lakeside.csv"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_csv_that_fails_half_way_leaves_no_file_and_the_older_report_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "lakeside.csv"
    target.write_text("yesterday's report\n")

    def cut_off() -> Iterator[CallLine]:
        yield from _lines(2)
        raise DatabaseWentAway

    with pytest.raises(DatabaseWentAway):
        write_calls_csv(cut_off(), target)
    assert target.read_text() == "yesterday's report\n"
    assert _leftovers(tmp_path) == ["lakeside.csv"], "no temp file left behind"


def test_a_failed_first_report_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DatabaseWentAway), atomic_file(tmp_path / "report.png") as out:
        out.write(PNG_SIGNATURE)
        raise DatabaseWentAway
    assert _leftovers(tmp_path) == []


def test_a_folder_that_does_not_exist_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_file(tmp_path / "nowhere" / "report.png"):
        pass


def test_the_chart_is_a_png_of_the_figure_size(tmp_path: Path) -> None:
    start = datetime(2026, 3, 10, 13, 58, tzinfo=UTC)
    figures = CampaignFigures(
        CampaignHeading(uuid.uuid4(), "Harbor Bank survey", "active"),
        totals=[
            StatusTotal(CallStatus.COMPLETED, 96, 96, 96),
            StatusTotal(CallStatus.NO_ANSWER, 31, 31, 0),
        ],
        ended=[
            EndedInMinute(start + timedelta(minutes=n), status, calls)
            for n in range(4)
            for status, calls in ((CallStatus.COMPLETED, 24), (CallStatus.NO_ANSWER, 8 - n))
        ],
        hours=[HourAttempts(13, 40, 29), HourAttempts(14, 87, 67)],
        digits=[DigitsCount("5", 51), DigitsCount("4", 30), DigitsCount(None, 15)],
    )
    target = tmp_path / "survey.png"
    with atomic_file(target) as out:
        render_png(shape_report(figures), out)
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk's first fields
    assert (width, height) == (int(SIZE_INCHES[0] * DPI), int(SIZE_INCHES[1] * DPI))
    assert len(data) > 20_000, "three panels of bars and text, not a blank image"
