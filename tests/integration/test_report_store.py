"""`sespcl report` on the real PostgreSQL: a finished appointment-reminder campaign of 18 calls,
written the way the dispatcher writes them (its claim's rows, then its transition store: statuses,
hangup causes, the machine-detection verdict, the digits), reported as a CSV and as a chart.

The campaign ran yesterday from hh:55 to hh+1:02 (UTC), so its attempts fall in two hours of
the day and its calls end over eight minutes, one of them without an end. Its calls sit on a
trunk that is never in the trunks table: no dispatcher of the stack would ever claim one."""

from __future__ import annotations

import csv
import os
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

import orchestrator.report_chart
from orchestrator.cli import main
from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus, call_duration_s
from orchestrator.domain.facts import CallFact, Change
from orchestrator.domain.interaction import AnsweredBy, DigitReply, Gather, Interaction
from orchestrator.domain.outcome import Ending
from orchestrator.domain.q850 import cause_text
from orchestrator.domain.report import CSV_COLUMNS, NO_KEY, CampaignReport, KeyBar
from orchestrator.persistence.calls import DNC_REASON
from orchestrator.persistence.db import open_pool
from orchestrator.persistence.dispatch import DispatchStore

Db = psycopg.Connection[dict[str, Any]]
C, B, N, F = CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED
HUMAN, BEEP, MACHINE = AnsweredBy.HUMAN, AnsweredBy.MACHINE_END_BEEP, AnsweredBy.MACHINE_START
NODE = "report-test-n1"
RETRY_GAP_S = 120  # the campaign's backoff after busy
REMINDER = Interaction(gather=Gather(num_digits=1), on_digits={"1": DigitReply(), "2": DigitReply()})


@dataclass(frozen=True)
class Planned:
    """One call: its outcome and, for the attempt that ended it, when it started (seconds after
    the campaign's first dial), how long it rang and talked."""

    number: str
    outcome: CallStatus
    start_s: float = 0
    ring_s: float = 0
    talk_s: float = 0
    answered_by: AnsweredBy | None = None
    digits: str | None = None
    cause: int | None = None
    retried: bool = False
    """A first attempt ended busy RETRY_GAP_S before this one."""

    @property
    def attempts(self) -> int:
        return 0 if self.outcome is CallStatus.CANCELED else 2 if self.retried else 1

    def answered_at(self, t0: datetime) -> datetime | None:
        return t0 + timedelta(seconds=self.start_s + self.ring_s) if self.outcome is C else None

    def ended_at(self, t0: datetime) -> datetime:
        return t0 + timedelta(seconds=self.start_s + self.ring_s + self.talk_s)


PLAN = [
    Planned("+12025550143", C, 0, 6, 24, HUMAN, "1", 16),
    Planned("+12025550178", C, 20, 5, 22, HUMAN, "1", 16),
    Planned("+12125550123", B, 35, 0.5, cause=17),
    Planned("+13125550186", C, 50, 4, 38, BEEP, None, 16),  # the voicemail message left
    Planned("+14155550132", N, 65, 30, cause=19),
    Planned("+16175550114", C, 80, 7, 19, HUMAN, "2", 16),
    Planned("+442079460123", F, 95, 0.3, cause=34),  # the carrier's 503
    Planned("+442079460958", C, 110, 9, 14, HUMAN, None, 16),  # hung up without a key
    Planned("+441614960734", B, 240, 0.5, cause=17, retried=True),
    Planned("+4930901820", C, 125, 6, 20, HUMAN, "1", 16, retried=True),
    Planned("+493090182047", N, 140, 30, cause=19),
    Planned("+33142685300", C, 260, 5, 25, HUMAN, "1", 16),
    Planned("+33142685371", C, 300, 4, 12, MACHINE, None, 16),
    Planned("+61291234567", F, 330, 0.3, cause=38),
    Planned("+61291234598", C, 345, 6, 30, HUMAN, "1", 16),
    Planned("+81312345678", CallStatus.CANCELED, 400),  # on the do-not-call list
    Planned("+13055550147", B, 380, 0.5, cause=17, retried=True),
    Planned("+17185550166", C, 420, 5, 21, HUMAN, "1", 16),
]


@dataclass(frozen=True)
class Campaign:
    id: uuid.UUID
    name: str
    t0: datetime


@pytest.fixture(scope="module")
async def campaign(db: Db) -> AsyncIterator[Campaign]:
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(p.number)) for p in PLAN)
    # hh:55 yesterday: the attempts start in two hours of the day, whatever the time now.
    t0 = datetime.now(UTC).replace(minute=55, second=0, microsecond=0) - timedelta(days=1)
    made = Campaign(uuid.uuid4(), f"Lakeside Clinic reminders {uuid.uuid4().hex[:6]}", t0)
    trunk = f"report-{uuid.uuid4().hex[:8]}"
    pool = await open_pool(os.environ["DATABASE_URL"], name="sespcl-test", max_size=2)
    # A dispatcher that beats, or the stack's would adopt its live attempts as orphans.
    store = DispatchStore(pool, f"report-test-{uuid.uuid4()}")
    await store.heartbeat("report-test", os.getpid())
    try:
        db.execute(
            "INSERT INTO campaigns (id, name, trunk, tts_template, tts_voice, max_attempts, retry_on, "
            "retry_backoff_s, interaction, created_at) "
            "VALUES (%s, %s, %s, %s, 'en-us', 2, '{busy}', %s, %s, %s)",
            (
                made.id,
                made.name,
                trunk,
                _text("{{name}}"),
                RETRY_GAP_S,
                Jsonb(REMINDER.to_json()),
                t0 - timedelta(hours=1),
            ),
        )
        changes = [
            change
            for n, plan in enumerate(PLAN)
            for change in _claimed(db, made, trunk, n, plan, store.owner)
        ]
        stored = await store.apply(changes)
        assert sum(s is not None for s in stored) == sum(isinstance(c, Transition) for c in changes)
        yield made
    finally:
        db.execute("DELETE FROM dispatchers WHERE id = %s", (store.owner,))
        await pool.close()


def _text(name: str) -> str:
    return f"Hello {name}, your appointment at Lakeside Clinic is on Tuesday at 9:30. Press 1 to confirm."


def _claimed(
    db: Db, campaign: Campaign, trunk: str, position: int, plan: Planned, owner: str
) -> list[Change]:
    """The call as the dispatcher's claim leaves it (an attempt live, an earlier one ended busy
    if it was retried); then what the dispatcher stores of its live attempt, in order."""
    t0, call_id, attempt_id = campaign.t0, uuid.uuid4(), uuid.uuid4()
    created = t0 - timedelta(minutes=30) + timedelta(seconds=position)  # uploaded in PLAN's order
    start = t0 + timedelta(seconds=plan.start_s)
    if plan.outcome is CallStatus.CANCELED:
        status, reason, ended = CallStatus.CANCELED.value, DNC_REASON, start
    else:
        status, reason, ended = CallStatus.INITIATED.value, None, None
    first_cause, first_text = (17, cause_text(17)) if plan.retried else (None, None)
    db.execute(
        "INSERT INTO calls (id, campaign_id, to_number, trunk, tts_text, tts_voice, audio_hash, "
        "ring_timeout_s, interaction, max_attempts, retry_on, retry_backoff_s, status, status_reason, "
        "attempt_count, hangup_cause, hangup_cause_text, created_at, not_before, ended_at) "
        "VALUES (%s, %s, %s, %s, %s, 'en-us', %s, 30, %s, 2, '{busy}', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (call_id, campaign.id, plan.number, trunk, _text("Maria"), "a" * 64, Jsonb(REMINDER.to_json()),
         RETRY_GAP_S, status, reason, plan.attempts, first_cause, first_text,
         created, created, ended),
    )  # fmt: skip
    if plan.outcome is CallStatus.CANCELED:
        return []
    if plan.retried:
        first = start - timedelta(seconds=RETRY_GAP_S)
        db.execute(
            "INSERT INTO call_attempts (id, call_id, number, node, trunk, status, owner, started_at, "
            "ended_at, hangup_cause, hangup_cause_text) "
            "VALUES (%s, %s, 1, %s, %s, 'busy', %s, %s, %s, 17, %s)",
            (
                uuid.uuid4(),
                call_id,
                NODE,
                trunk,
                owner,
                first,
                first + timedelta(seconds=0.5),
                cause_text(17),
            ),
        )
    db.execute(
        "INSERT INTO call_attempts (id, call_id, number, node, trunk, status, owner, started_at) "
        "VALUES (%s, %s, %s, %s, %s, 'initiated', %s, %s)",
        (attempt_id, call_id, plan.attempts, NODE, trunk, owner, start),
    )
    return _story(call_id, attempt_id, start, plan)


def _story(call_id: uuid.UUID, attempt_id: uuid.UUID, start: datetime, plan: Planned) -> list[Change]:
    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    assert plan.cause is not None
    ending = Ending(plan.outcome, plan.cause, cause_text(plan.cause))
    if plan.outcome in (B, F):
        return [Transition(attempt_id, call_id, plan.outcome, at(plan.ring_s), ending=ending)]
    ringing = Transition(
        attempt_id, call_id, CallStatus.RINGING, at(1), channel=f"PJSIP/{NODE}-{attempt_id.hex[:8]}"
    )
    if plan.outcome is N:
        return [ringing, Transition(attempt_id, call_id, N, at(plan.ring_s), ending=ending)]
    answer = plan.ring_s
    story: list[Change] = [
        ringing,
        Transition(attempt_id, call_id, CallStatus.IN_PROGRESS, at(answer), answered=True),
    ]
    if plan.answered_by is not None:
        story.append(
            CallFact(
                attempt_id=attempt_id, call_id=call_id, at=at(answer + 2.5), answered_by=plan.answered_by
            )
        )
    if plan.digits is not None:
        story.append(CallFact(attempt_id=attempt_id, call_id=call_id, at=at(answer + 6), digits=plan.digits))
    story.append(Transition(attempt_id, call_id, C, at(answer + plan.talk_s), ending=ending))
    return story


def _report(*args: str) -> Any:
    return CliRunner().invoke(main, ["report", *args])


def test_the_csv_has_a_row_per_call_as_inserted(campaign: Campaign, tmp_path: Path) -> None:
    target = tmp_path / "lakeside.csv"
    result = _report(str(campaign.id), "--out", str(target))
    assert result.exit_code == 0, result.output
    assert "18 calls" in result.output and campaign.name in result.output
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(CSV_COLUMNS)
    expected = [
        [
            plan.number,
            plan.outcome.value,
            plan.answered_by.value if plan.answered_by else "",
            plan.digits or "",
            str(plan.attempts),
            str(call_duration_s(plan.answered_at(campaign.t0), plan.ended_at(campaign.t0))),
            "" if plan.cause is None else str(plan.cause),
        ]
        for plan in PLAN
    ]
    assert rows[1:] == expected
    # Spot checks of what the line above derives, against the plan as a person reads it.
    assert rows[1] == ["+12025550143", "completed", "human", "1", "1", "24.0", "16"]
    assert rows[9] == ["+441614960734", "busy", "", "", "2", "0.0", "17"]
    assert rows[16] == ["+81312345678", "canceled", "", "", "0", "0.0", ""]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lakeside.csv"]


def test_the_chart_is_a_real_png_drawn_from_the_right_figures(
    campaign: Campaign, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[CampaignReport] = []
    render = orchestrator.report_chart.render_png

    def spy(report: CampaignReport, out: Any) -> None:
        drawn.append(report)
        render(report, out)

    monkeypatch.setattr(orchestrator.report_chart, "render_png", spy)
    target = tmp_path / "lakeside.png"
    result = _report(str(campaign.id), "--out", str(target))
    assert result.exit_code == 0, result.output

    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", data[16:24]) == (1400, 900)
    assert 30_000 < len(data) < 2_000_000

    [report] = drawn
    assert report.title.splitlines() == [
        f"Campaign “{campaign.name}” (active) · {campaign.id}",
        "18 calls: 10 completed · 3 busy · 2 no-answer · 2 failed · 1 canceled"
        " — 59% of dialed calls answered",
    ]
    minutes = [campaign.t0 + timedelta(minutes=n) for n in range(8)]  # hh:55 to hh+1:02
    assert report.timeline.minutes == tuple(minutes)
    assert report.timeline.calls == {
        C: (2, 2, 2, 0, 1, 1, 1, 1),
        B: (1, 0, 0, 0, 1, 0, 1, 0),
        N: (0, 1, 1, 0, 0, 0, 0, 0),
        F: (0, 1, 0, 0, 0, 1, 0, 0),
        CallStatus.CANCELED: (0, 0, 0, 0, 0, 0, 1, 0),
    }
    # 20 attempts (three calls dialed twice): 15 from hh:55, 5 from hh+1:00.
    hour = campaign.t0.hour
    next_hour = (hour + 1) % 24
    assert {h: n for h, n in enumerate(report.hourly.attempts) if n} == {hour: 15, next_hour: 5}
    assert {h: n for h, n in enumerate(report.hourly.answered) if n} == {hour: 7, next_hour: 3}
    assert report.keys == (KeyBar("1", 6), KeyBar("2", 1), KeyBar(NO_KEY, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lakeside.png"]


def test_an_unknown_campaign_is_one_line_and_exit_1(tmp_path: Path) -> None:
    unknown = uuid.uuid4()
    for name in ("nothing.csv", "nothing.png"):
        result = _report(str(unknown), "--out", str(tmp_path / name))
        assert result.exit_code == 1, result.output
        assert result.output == f"Error: no campaign {unknown}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_id_or_another_extension_is_a_usage_error(campaign: Campaign, tmp_path: Path) -> None:
    malformed = _report("lakeside-reminders", "--out", str(tmp_path / "report.csv"))
    assert malformed.exit_code == 2 and "is not a valid UUID" in malformed.output, malformed.output
    for name in ("report.pdf", "report"):
        result = _report(str(campaign.id), "--out", str(tmp_path / name))
        assert result.exit_code == 2, result.output
        assert ".png (the chart) or .csv (the calls)" in result.output
    missing = _report(str(campaign.id))
    assert missing.exit_code == 2 and "Missing option '--out'" in missing.output
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_does_not_exist_is_one_line_and_exit_1(campaign: Campaign, tmp_path: Path) -> None:
    result = _report(str(campaign.id), "--out", str(tmp_path / "q3" / "lakeside.csv"))
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: cannot write {tmp_path / 'q3' / 'lakeside.csv'}: No such file or directory\n"
    )
