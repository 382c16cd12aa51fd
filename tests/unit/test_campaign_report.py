"""A campaign's report shaped from the database's figures (domain/report.py): an appointment
reminder campaign of 2,140 calls half way through its morning, retries after busy included."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.domain.call import FINAL_STATUSES, CallStatus, call_duration_s
from orchestrator.domain.report import (
    CSV_COLUMNS,
    NO_KEY,
    OUTCOMES,
    CallLine,
    CampaignFigures,
    CampaignHeading,
    DigitsCount,
    EndedInMinute,
    HourAttempts,
    KeyBar,
    ReportFormat,
    StatusTotal,
    hourly_of,
    key_bars,
    shape_report,
    timeline_of,
    totals_of,
)

CAMPAIGN = CampaignHeading(
    id=uuid.UUID("0190f4c2-7d1e-7a3b-9c55-2f1d8e6a4b10"), name="Lakeside Clinic reminders", status="active"
)
NINE_FIFTY_EIGHT = datetime(2026, 3, 10, 9, 58, tzinfo=UTC)


def _minute(n: int) -> datetime:
    return NINE_FIFTY_EIGHT + timedelta(minutes=n)


TOTALS = [
    StatusTotal(CallStatus.COMPLETED, calls=1_312, dialed=1_312, answered=1_312),
    StatusTotal(CallStatus.BUSY, calls=143, dialed=143, answered=0),
    StatusTotal(CallStatus.NO_ANSWER, calls=288, dialed=288, answered=0),
    StatusTotal(CallStatus.FAILED, calls=37, dialed=37, answered=0),
    StatusTotal(CallStatus.CANCELED, calls=12, dialed=0, answered=0),  # on the do-not-call list
    StatusTotal(CallStatus.QUEUED, calls=318, dialed=61, answered=0),  # 61 wait to retry after busy
    StatusTotal(CallStatus.IN_PROGRESS, calls=30, dialed=30, answered=30),
]
ENDED = [
    EndedInMinute(_minute(0), CallStatus.COMPLETED, 52),
    EndedInMinute(_minute(0), CallStatus.NO_ANSWER, 9),
    EndedInMinute(_minute(1), CallStatus.COMPLETED, 61),
    EndedInMinute(_minute(1), CallStatus.BUSY, 7),
    # minute 2: the carrier's outage, nothing ended
    EndedInMinute(_minute(3), CallStatus.FAILED, 37),
    EndedInMinute(_minute(3), CallStatus.CANCELED, 12),
    EndedInMinute(_minute(3), CallStatus.COMPLETED, 4),
]


def test_every_final_status_is_an_outcome_of_the_chart() -> None:
    assert sorted(OUTCOMES) == sorted(FINAL_STATUSES) and len(OUTCOMES) == len(FINAL_STATUSES)


def test_the_totals_count_every_call_and_the_answer_rate_is_of_the_dialed_ones() -> None:
    totals = totals_of(TOTALS)
    assert totals.calls == 2_140
    assert totals.by_status[CallStatus.BUSY] == 143
    assert totals.to_go == 318 + 30
    assert totals.dialed == 1_871 and totals.answered == 1_342
    assert totals.answer_rate == pytest.approx(1_342 / 1_871)


def test_a_campaign_never_dialed_has_no_answer_rate() -> None:
    totals = totals_of([StatusTotal(CallStatus.QUEUED, calls=5_000, dialed=0, answered=0)])
    assert totals.answer_rate is None and totals.to_go == 5_000


def test_the_title_names_the_campaign_and_its_totals_in_outcome_order() -> None:
    report = shape_report(CampaignFigures(CAMPAIGN, TOTALS, ENDED, [], []))
    assert report.title == (
        "Campaign “Lakeside Clinic reminders” (active) · 0190f4c2-7d1e-7a3b-9c55-2f1d8e6a4b10\n"
        "2,140 calls: 1,312 completed · 143 busy · 288 no-answer · 37 failed · 12 canceled · 348 to go"
        " — 72% of dialed calls answered"
    )


def test_the_title_of_an_empty_campaign() -> None:
    report = shape_report(CampaignFigures(CAMPAIGN, [], [], [], []))
    assert report.title.splitlines()[1] == "0 calls"


def test_the_timeline_has_every_minute_and_a_series_per_outcome_that_occurred() -> None:
    timeline = timeline_of(ENDED)
    assert timeline.minutes == tuple(_minute(n) for n in range(4))
    assert list(timeline.calls) == [
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.FAILED,
        CallStatus.CANCELED,
    ]
    assert timeline.calls[CallStatus.COMPLETED] == (52, 61, 0, 4)
    assert timeline.calls[CallStatus.BUSY] == (0, 7, 0, 0)
    assert timeline.calls[CallStatus.CANCELED] == (0, 0, 0, 12)
    assert timeline.peak == 68


def test_the_timeline_is_in_utc_whatever_zone_the_database_answered_in() -> None:
    new_york = timezone(timedelta(hours=-4))
    timeline = timeline_of(
        [
            EndedInMinute(datetime(2026, 3, 10, 5, 59, tzinfo=new_york), CallStatus.COMPLETED, 3),
            EndedInMinute(datetime(2026, 3, 10, 10, 0, tzinfo=UTC), CallStatus.COMPLETED, 2),
        ]
    )
    assert timeline.minutes == (
        datetime(2026, 3, 10, 9, 59, tzinfo=UTC),
        datetime(2026, 3, 10, 10, 0, tzinfo=UTC),
    )
    assert all(m.tzinfo is UTC for m in timeline.minutes)
    assert timeline.calls == {CallStatus.COMPLETED: (3, 2)}


def test_no_call_ended_yet_is_an_empty_timeline() -> None:
    timeline = timeline_of([])
    assert timeline.minutes == () and timeline.calls == {} and timeline.peak == 0


def test_answer_rates_by_hour_of_day() -> None:
    hourly = hourly_of(
        [
            HourAttempts(hour=9, attempts=842, answered=530),
            HourAttempts(hour=10, attempts=1_090, answered=748),
            HourAttempts(hour=17, attempts=4, answered=1),
        ]
    )
    assert len(hourly.attempts) == 24
    assert hourly.attempts[9] == 842 and hourly.answered[10] == 748
    assert hourly.rates[9] == pytest.approx(530 / 842)
    assert hourly.rates[17] == 0.25
    assert hourly.rates[11] is None, "an hour without attempts has no rate, not a rate of 0"


def test_keys_most_pressed_first_then_the_calls_where_none_was() -> None:
    bars = key_bars(
        [
            DigitsCount(None, 402),
            DigitsCount("9", 41),
            DigitsCount("1", 869),
            DigitsCount("2", 41),
        ]
    )
    assert bars == (KeyBar("1", 869), KeyBar("2", 41), KeyBar("9", 41), KeyBar(NO_KEY, 402))


def test_past_the_most_bars_the_rest_of_the_keys_share_one() -> None:
    """A gather of four digits (a date of birth, say) gives a digit string per caller."""
    pressed = [DigitsCount(f"{1950 + n}", 100 - n) for n in range(14)]
    bars = key_bars(pressed, most=10)
    assert [b.label for b in bars[:10]] == [f"{1950 + n}" for n in range(10)]
    assert bars[10] == KeyBar("other keys (4)", 90 + 89 + 88 + 87)
    assert sum(b.calls for b in bars) == sum(d.calls for d in pressed)


def test_no_answered_call_means_no_key_bars() -> None:
    assert key_bars([]) == ()


def test_a_call_line_as_csv_cells() -> None:
    answered = datetime(2026, 3, 10, 9, 58, 4, 250_000, tzinfo=UTC)
    confirmed = CallLine(
        number="+12025550143",
        status=CallStatus.COMPLETED,
        answered_by="human",
        digits="1",
        attempts=2,
        answered_at=answered,
        ended_at=answered + timedelta(seconds=21, milliseconds=375),
        cause=16,
    )
    assert dict(zip(CSV_COLUMNS, confirmed.cells(), strict=True)) == {
        "number": "+12025550143",
        "status": "completed",
        "answered_by": "human",
        "digits": "1",
        "attempts": "2",
        "duration": "21.375",
        "cause": "16",
    }
    busy = CallLine("+442079460123", CallStatus.BUSY, None, None, 1, None, answered, 17)
    assert busy.cells() == ("+442079460123", "busy", "", "", "1", "0.0", "17")
    waiting = CallLine("+33142685300", CallStatus.QUEUED, None, None, 0, None, None, None)
    assert waiting.cells() == ("+33142685300", "queued", "", "", "0", "", "")


def test_a_call_lasts_from_its_answer_to_its_end() -> None:
    start = datetime(2026, 3, 10, 9, 58, tzinfo=UTC)
    assert call_duration_s(start, start + timedelta(seconds=42, microseconds=123_456)) == 42.123
    assert call_duration_s(None, start) == 0.0, "ended unanswered"
    assert call_duration_s(start, None) is None, "still on the line"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.png", ReportFormat.PNG),
        ("Q3 outage.CSV", ReportFormat.CSV),
        ("/tmp/reports/lakeside.2026-03-10.csv", ReportFormat.CSV),
        ("report.pdf", None),
        ("report", None),
        ("png", None),
        ("report.png.txt", None),
    ],
)
def test_the_format_follows_the_extension(name: str, expected: ReportFormat | None) -> None:
    assert ReportFormat.of(name) is expected
