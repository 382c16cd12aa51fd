"""What each SQL query of the dashboards must return over the story's rows
(tests/integration/dashboard_story.py), computed here from the story itself: one check per
panel (and per variable), keyed "<dashboard title> / <panel title>"."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.dashboard_story import CAUSES, Attempt, Call, Story

Rows = list[dict[str, Any]]
Check = Callable[[Rows, Story], None]


def bucket(moment: datetime, minutes: int = 1) -> datetime:
    """The start of the interval `moment` falls in, intervals counted from the epoch."""
    seconds = int(moment.timestamp()) // (minutes * 60) * minutes * 60
    return datetime.fromtimestamp(seconds, moment.tzinfo)


def percentile_cont(values: Iterable[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear between the two nearest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def series(rows: Rows, value: str) -> Counter[tuple[datetime, str]]:
    return Counter({(r["time"], r["metric"]): int(r[value]) for r in rows})


def pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1)


def number(value: Any) -> float:
    assert isinstance(value, int | float | Decimal), value
    return float(value)


def campaign_calls(story: Story) -> list[Call]:
    return [c for c in story.calls if c.in_campaign]


def by_trunk(story: Story) -> dict[str, list[Attempt]]:
    return {t: [a for a in story.ended_attempts() if a.trunk == t] for t in (story.east, story.west)}


def pdd(attempt: Attempt) -> float:
    assert attempt.pdd_s is not None
    return attempt.pdd_s


# ---- Calls -------------------------------------------------------------------------------------


def calls_ended(rows: Rows, story: Story) -> None:
    assert series(rows, "calls") == Counter((bucket(c.last.ended), c.last.outcome) for c in story.calls)


def live_now(rows: Rows, story: Story) -> None:
    assert rows == [{"Dialing": 0, "Ringing": 1, "Talking": 1, "Live": 2}]


def attempts_by_trunk(rows: Rows, story: Story) -> None:
    assert series(rows, "attempts") == Counter((bucket(a.started), a.trunk) for a in story.ended_attempts())


def answer_rate(rows: Rows, story: Story) -> None:
    expected = []
    for trunk, attempts in sorted(by_trunk(story).items()):
        talks = [a.talk_s for a in attempts if a.talk_s is not None]
        expected.append(
            (
                trunk,
                len(attempts),
                len(talks),
                pct(len(talks), len(attempts)),
                round(statistics.mean(talks), 1),
            )
        )
    got = [
        (r["Trunk"], r["Attempts"], r["Answered"], number(r["Answer rate %"]), number(r["Average talk s"]))
        for r in rows
    ]
    assert got == expected


def latest_failures(rows: Rows, story: Story) -> None:
    failed = sorted(
        (a for a in story.ended_attempts() if a.outcome == "failed"), key=lambda a: a.ended, reverse=True
    )
    got = [(r["Trunk"], r["Outcome"], r["Retried"], r["Cause"], r["Meaning"]) for r in rows]
    assert got == [(a.trunk, "failed", a.retried, a.cause, CAUSES[a.cause]) for a in failed]
    assert [r["Time"] for r in rows] == [a.ended + timedelta(microseconds=1) for a in failed]


# ---- Campaigns ---------------------------------------------------------------------------------


# The campaign now: its ended calls, two live, three queued.
def _campaign_counts(story: Story) -> dict[str, int]:
    done = len(campaign_calls(story))
    return {"total": done + 5, "queued": 3, "live": 2, "done": done}


def done_gauge(rows: Rows, story: Story) -> None:
    counts = _campaign_counts(story)
    assert [number(r["Done %"]) for r in rows] == [pct(counts["done"], counts["total"])]


def campaign_calls_stat(rows: Rows, story: Story) -> None:
    counts = _campaign_counts(story)
    assert rows == [{"Total": counts["total"], "Queued": 3, "Live": 2, "Done": counts["done"]}]


def pace(rows: Rows, story: Story) -> None:
    # The two live calls started 30 s ago: 2 attempts in 10 minutes; 3 queued at that pace.
    assert len(rows) == 1
    assert number(rows[0]["Calls/s (10 min)"]) == pytest.approx(2 / 600)
    assert number(rows[0]["Time left"]) == 900


def outcomes_so_far(rows: Rows, story: Story) -> None:
    ended = Counter(c.last.outcome for c in campaign_calls(story))
    assert rows == [
        {status: ended[status] for status in ("completed", "busy", "no-answer", "failed", "canceled")}
    ]


def campaign_ended(rows: Rows, story: Story) -> None:
    assert series(rows, "calls") == Counter(
        (bucket(c.last.ended), c.last.outcome) for c in campaign_calls(story)
    )


def digits(rows: Rows, story: Story) -> None:
    pressed = Counter(c.digits for c in campaign_calls(story) if c.digits)
    assert {r["Digits"]: r["Calls"] for r in rows} == pressed
    assert [r["Calls"] for r in rows] == sorted(pressed.values(), reverse=True)


def verdicts(rows: Rows, story: Story) -> None:
    heard = Counter(c.answered_by for c in campaign_calls(story) if c.answered_by)
    assert {r["Verdict"]: r["Calls"] for r in rows} == heard


def latest_answers(rows: Rows, story: Story) -> None:
    facts: list[tuple[datetime, str, str | None, str | None]] = []
    for call in story.calls:
        answered = call.last.answered
        if answered is None:
            continue
        if call.answered_by:
            facts.append((answered + timedelta(seconds=2), "machine_detection", None, call.answered_by))
        if call.digits:
            facts.append((answered + timedelta(seconds=6), "digits", call.digits, None))
    facts.sort(reverse=True)
    got = [(r["Time"], r["Event"], r["Digits"], r["Answered by"]) for r in rows]
    assert got == facts
    assert {r["Campaign"] for r in rows} == {story.campaign_name} and not any(r["Opted out"] for r in rows)


def campaigns_table(rows: Rows, story: Story) -> None:
    counts = _campaign_counts(story)
    ours = [r for r in rows if r["Campaign"] == story.campaign_name]
    assert len(ours) == 1
    row = ours[0]
    assert (row["Status"], row["Total"], row["Queued"], row["Live"], row["Done"]) == (
        "active",
        counts["total"],
        3,
        2,
        counts["done"],
    )
    assert number(row["Done %"]) == pct(counts["done"], counts["total"]) and number(row["Time left s"]) == 900


# ---- Carriers ----------------------------------------------------------------------------------


def attempt_outcomes(rows: Rows, story: Story) -> None:
    assert series(rows, "attempts") == Counter((bucket(a.started), a.outcome) for a in story.ended_attempts())


def outcomes_per_trunk(rows: Rows, story: Story) -> None:
    columns = {
        "Answered %": "completed",
        "Busy %": "busy",
        "No answer %": "no-answer",
        "Failed %": "failed",
        "Canceled %": "canceled",
    }
    for row, (trunk, attempts) in zip(rows, sorted(by_trunk(story).items()), strict=True):
        outcomes = Counter(a.outcome for a in attempts)
        assert (row["Trunk"], row["Attempts"]) == (trunk, len(attempts))
        assert {c: number(row[c]) for c in columns} == {
            c: pct(outcomes[s], len(attempts)) for c, s in columns.items()
        }


def hangup_causes(rows: Rows, story: Story) -> None:
    expected = set()
    for trunk, attempts in by_trunk(story).items():
        for cause, n in Counter(a.cause for a in attempts).items():
            expected.add((trunk, cause, CAUSES[cause], n, pct(n, len(attempts))))
    got = [(r["Trunk"], r["Cause"], r["Meaning"], r["Attempts"], number(r["Share of trunk %"])) for r in rows]
    assert set(got) == expected and len(got) == len(expected)
    assert [g[3] for g in got] == sorted((g[3] for g in got), reverse=True)


def pdd_per_trunk(rows: Rows, story: Story) -> None:
    expected = []
    for trunk, attempts in sorted(by_trunk(story).items()):
        delays = [pdd(a) for a in attempts if a.pdd_s is not None]
        expected.append(
            (
                trunk,
                len(delays),
                round(percentile_cont(delays, 0.5), 2),
                round(percentile_cont(delays, 0.9), 2),
                max(delays),
            )
        )
    got = [(r["Trunk"], r["Rang"], number(r["p50 s"]), number(r["p90 s"]), number(r["Max s"])) for r in rows]
    assert got == expected


def pdd_series(rows: Rows, story: Story) -> None:
    groups: dict[tuple[datetime, str], list[float]] = {}
    for a in story.ended_attempts():
        if a.pdd_s is not None:
            rang = a.started + timedelta(seconds=a.pdd_s, microseconds=1)
            groups.setdefault((bucket(rang, 5), a.trunk), []).append(a.pdd_s)
    got = {(r["time"], r["metric"]): (r["p50"], r["p90"]) for r in rows}
    assert set(got) == set(groups)
    for key, delays in groups.items():
        assert got[key] == pytest.approx(
            (percentile_cont(delays, 0.5), percentile_cont(delays, 0.9)), abs=1e-5
        )


# ---- Farm --------------------------------------------------------------------------------------


def nodes(rows: Rows, story: Story) -> None:
    got = [
        (r["Node"], r["State"], r["Drained"], r["Live calls"], number(r["Pace cps"]), r["Asterisk"])
        for r in rows
    ]
    assert got == [(node, "up", False, 1, 25.0, "22.5.0") for node in story.nodes]


def attempts_by_node(rows: Rows, story: Story) -> None:
    assert series(rows, "attempts") == Counter((bucket(a.started), a.node) for a in story.ended_attempts())


def dispatchers(rows: Rows, story: Story) -> None:
    ours = [r for r in rows if r["Dispatcher"] == story.dispatcher]
    assert [(r["Host"], r["Pid"], number(r["Heartbeat age s"])) for r in ours] == [("dialer-7", 4242, 3.0)]


# ---- Variables ---------------------------------------------------------------------------------


def trunk_names(rows: Rows, story: Story) -> None:
    names = [r["name"] for r in rows]
    assert {story.east, story.west} <= set(names) and names == sorted(names)


def campaign_choices(rows: Rows, story: Story) -> None:
    assert {"__text": story.campaign_name, "__value": str(story.campaign_id)} in rows


def node_names(rows: Rows, story: Story) -> None:
    assert set(story.nodes) <= {r["name"] for r in rows}


CHECKS: dict[str, Check] = {
    "SESPCLSwitch: Calls / $trunk": trunk_names,
    "SESPCLSwitch: Calls / Calls ended per minute, by status": calls_ended,
    "SESPCLSwitch: Calls / Live calls now": live_now,
    "SESPCLSwitch: Calls / Attempts started per minute, by trunk": attempts_by_trunk,
    "SESPCLSwitch: Calls / Answer rate and talk time per trunk": answer_rate,
    "SESPCLSwitch: Calls / Latest failures and why": latest_failures,
    "SESPCLSwitch: Campaigns / $campaign": campaign_choices,
    "SESPCLSwitch: Campaigns / Done": done_gauge,
    "SESPCLSwitch: Campaigns / Calls": campaign_calls_stat,
    "SESPCLSwitch: Campaigns / Pace and time left": pace,
    "SESPCLSwitch: Campaigns / Outcomes so far": outcomes_so_far,
    "SESPCLSwitch: Campaigns / Calls ended, by status": campaign_ended,
    "SESPCLSwitch: Campaigns / Digits pressed": digits,
    "SESPCLSwitch: Campaigns / Machine detection verdicts": verdicts,
    "SESPCLSwitch: Campaigns / Latest answers heard, every campaign": latest_answers,
    "SESPCLSwitch: Campaigns / Campaigns": campaigns_table,
    "SESPCLSwitch: Carriers / $trunk": trunk_names,
    "SESPCLSwitch: Carriers / Attempt outcomes": attempt_outcomes,
    "SESPCLSwitch: Carriers / Outcomes per trunk": outcomes_per_trunk,
    "SESPCLSwitch: Carriers / Top hangup causes": hangup_causes,
    "SESPCLSwitch: Carriers / Post-dial delay per trunk": pdd_per_trunk,
    "SESPCLSwitch: Carriers / Post-dial delay, p50 and p90": pdd_series,
    "SESPCLSwitch: Farm / $node": node_names,
    "SESPCLSwitch: Farm / Nodes": nodes,
    "SESPCLSwitch: Farm / Attempts started per minute, by node": attempts_by_node,
    "SESPCLSwitch: Farm / Dispatchers": dispatchers,
}
