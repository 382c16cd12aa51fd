"""A campaign's report for people (`sespcl report`): the figures read from the database, shaped
into what the chart shows and what a row of the CSV says. Pure: no I/O.

The chart has three panels: calls ended per minute by outcome, the share of attempts answered
by hour of day (UTC), and the keys pressed on answered calls; its title names the campaign and
its totals. The CSV has a row per call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from uuid import UUID

from orchestrator.domain.call import CallStatus, call_duration_s

OUTCOMES: tuple[CallStatus, ...] = (
    CallStatus.COMPLETED,
    CallStatus.BUSY,
    CallStatus.NO_ANSWER,
    CallStatus.FAILED,
    CallStatus.CANCELED,
)
"""The final statuses, in the order the chart stacks them and the title lists them."""

MOST_KEY_BARS = 10
"""Digit strings drawn one bar each; any more share an "other keys" bar (a free-form gather of
several digits could give hundreds)."""
NO_KEY = "no key"
OTHER_KEYS = "other keys"
HOURS_IN_DAY = 24


class ReportFormat(str, Enum):
    """What `--out` writes, told by its file name's extension."""

    PNG = "png"
    CSV = "csv"

    @classmethod
    def of(cls, file_name: str) -> ReportFormat | None:
        suffix = file_name.rpartition(".")[2].lower() if "." in file_name else ""
        return next((f for f in cls if f.value == suffix), None)


# ---- figures, as the database aggregates them ---------------------------------------------------


@dataclass(frozen=True)
class CampaignHeading:
    id: UUID
    name: str
    status: str


@dataclass(frozen=True)
class StatusTotal:
    """The campaign's calls in one status: how many, how many were dialed (one attempt or
    more), how many were answered (by a person or a machine)."""

    status: CallStatus
    calls: int
    dialed: int
    answered: int


@dataclass(frozen=True)
class EndedInMinute:
    minute: datetime
    """The minute's start."""
    status: CallStatus
    calls: int


@dataclass(frozen=True)
class HourAttempts:
    """Attempts that ended, started in one hour of the day (UTC), and how many were answered."""

    hour: int
    attempts: int
    answered: int


@dataclass(frozen=True)
class DigitsCount:
    digits: str | None
    """None: calls answered with no key pressed."""
    calls: int


@dataclass(frozen=True)
class CampaignFigures:
    heading: CampaignHeading
    totals: Sequence[StatusTotal]
    ended: Sequence[EndedInMinute]
    hours: Sequence[HourAttempts]
    digits: Sequence[DigitsCount]


# ---- the report, shaped for the chart -----------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    calls: int
    by_status: Mapping[CallStatus, int]
    dialed: int
    answered: int

    @property
    def to_go(self) -> int:
        """Calls not ended yet: queued (a retry's wait included) or live."""
        return self.calls - sum(self.by_status.get(s, 0) for s in OUTCOMES)

    @property
    def answer_rate(self) -> float | None:
        """The share of dialed calls that were answered; None before any was dialed."""
        return self.answered / self.dialed if self.dialed else None


@dataclass(frozen=True)
class OutcomeTimeline:
    minutes: tuple[datetime, ...]
    """Every minute (UTC) from the first call's end to the last one's, none skipped."""
    calls: Mapping[CallStatus, tuple[int, ...]]
    """Per outcome that occurred, in OUTCOMES order: calls ended in each of `minutes`."""

    @property
    def peak(self) -> int:
        """Most calls ended in one minute, all outcomes together."""
        return max((sum(column) for column in zip(*self.calls.values())), default=0)


@dataclass(frozen=True)
class HourlyAnswers:
    attempts: tuple[int, ...]
    """Ended attempts started in each hour of the day (UTC): index 0 is 00:00-00:59."""
    answered: tuple[int, ...]

    @property
    def rates(self) -> tuple[float | None, ...]:
        """Each hour's share answered; None for an hour without attempts."""
        return tuple(a / n if n else None for a, n in zip(self.answered, self.attempts))


@dataclass(frozen=True)
class KeyBar:
    label: str
    calls: int


@dataclass(frozen=True)
class CampaignReport:
    heading: CampaignHeading
    totals: Totals
    timeline: OutcomeTimeline
    hourly: HourlyAnswers
    keys: tuple[KeyBar, ...]

    @property
    def title(self) -> str:
        """Two lines: the campaign, then its totals."""
        h, t = self.heading, self.totals
        parts = [f"{t.by_status[s]:,} {s.value}" for s in OUTCOMES if t.by_status.get(s)]
        if t.to_go:
            parts.append(f"{t.to_go:,} to go")
        rate = t.answer_rate
        answered = f" — {rate:.0%} of dialed calls answered" if rate is not None else ""
        calls = f"{t.calls:,} call{'' if t.calls == 1 else 's'}"
        breakdown = f": {' · '.join(parts)}" if parts else ""
        return f"Campaign “{h.name}” ({h.status}) · {h.id}\n{calls}{breakdown}{answered}"


def shape_report(figures: CampaignFigures) -> CampaignReport:
    return CampaignReport(
        heading=figures.heading,
        totals=totals_of(figures.totals),
        timeline=timeline_of(figures.ended),
        hourly=hourly_of(figures.hours),
        keys=key_bars(figures.digits),
    )


def totals_of(rows: Iterable[StatusTotal]) -> Totals:
    listed = list(rows)
    return Totals(
        calls=sum(r.calls for r in listed),
        by_status={r.status: r.calls for r in listed if r.calls},
        dialed=sum(r.dialed for r in listed),
        answered=sum(r.answered for r in listed),
    )


def timeline_of(rows: Iterable[EndedInMinute]) -> OutcomeTimeline:
    counts: dict[tuple[datetime, CallStatus], int] = {}
    for row in rows:
        key = (_minute(row.minute), row.status)
        counts[key] = counts.get(key, 0) + row.calls
    if not counts:
        return OutcomeTimeline(minutes=(), calls={})
    first, last = min(m for m, _ in counts), max(m for m, _ in counts)
    minutes = tuple(
        first + timedelta(minutes=i) for i in range(int((last - first) / timedelta(minutes=1)) + 1)
    )
    seen = {status for _, status in counts}
    return OutcomeTimeline(
        minutes=minutes,
        calls={s: tuple(counts.get((m, s), 0) for m in minutes) for s in OUTCOMES if s in seen},
    )


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def hourly_of(rows: Iterable[HourAttempts]) -> HourlyAnswers:
    attempts, answered = [0] * HOURS_IN_DAY, [0] * HOURS_IN_DAY
    for row in rows:
        attempts[row.hour] += row.attempts
        answered[row.hour] += row.answered
    return HourlyAnswers(attempts=tuple(attempts), answered=tuple(answered))


def key_bars(rows: Iterable[DigitsCount], most: int = MOST_KEY_BARS) -> tuple[KeyBar, ...]:
    """The digit strings pressed, most pressed first (then in key order), the ones past `most`
    summed into one bar; then the answered calls where no key was pressed."""
    listed = list(rows)
    pressed = sorted(
        ((r.digits, r.calls) for r in listed if r.digits is not None), key=lambda p: (-p[1], p[0])
    )
    silent = sum(r.calls for r in listed if r.digits is None)
    bars = [KeyBar(digits, calls) for digits, calls in pressed[:most]]
    if len(pressed) > most:
        rest = pressed[most:]
        bars.append(KeyBar(f"{OTHER_KEYS} ({len(rest)})", sum(calls for _, calls in rest)))
    if silent:
        bars.append(KeyBar(NO_KEY, silent))
    return tuple(bars)


# ---- the CSV: a row per call --------------------------------------------------------------------

CSV_COLUMNS = ("number", "status", "answered_by", "digits", "attempts", "duration", "cause")


@dataclass(frozen=True)
class CallLine:
    number: str
    status: CallStatus
    answered_by: str | None
    digits: str | None
    attempts: int
    answered_at: datetime | None
    ended_at: datetime | None
    cause: int | None
    """The Q.850 cause of the call's last hangup."""

    def cells(self) -> tuple[str, ...]:
        """The row under CSV_COLUMNS: blank where there is nothing to say; `duration` in
        seconds, as the API's `duration_s`."""
        duration = call_duration_s(self.answered_at, self.ended_at)
        return (
            self.number,
            self.status.value,
            self.answered_by or "",
            self.digits or "",
            str(self.attempts),
            "" if duration is None else str(duration),
            "" if self.cause is None else str(self.cause),
        )
