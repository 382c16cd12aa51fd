"""Grafana's PostgreSQL macros and template variables, expanded as Grafana sends a panel's SQL
(bench/grafana_macros.py): the texts Grafana's macro engine writes for each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bench.grafana_macros import (
    MacroError,
    TimeRange,
    Variable,
    expand,
    format_interval,
    parse_interval,
    rfc3339,
)

RANGE = TimeRange(
    datetime(2024, 3, 14, 9, 0, tzinfo=UTC), datetime(2024, 3, 14, 15, 0, 0, 250000, tzinfo=UTC)
)
MINUTE = timedelta(minutes=1)


# Each as Grafana's macro engine writes it (times in UTC, RFC 3339; buckets in epoch seconds).
MACROS = [
    (
        "$__timeFilter(ended_at) AND x > $__timeFrom() AND x < $__timeTo()",
        "ended_at BETWEEN '2024-03-14T09:00:00Z' AND '2024-03-14T15:00:00.25Z'"
        " AND x > '2024-03-14T09:00:00Z' AND x < '2024-03-14T15:00:00.25Z'",
    ),
    (
        "SELECT $__timeGroupAlias(at, $__interval) GROUP BY $__timeGroup(at, '5m')",
        'SELECT floor(extract(epoch from at)/60)*60 AS "time" GROUP BY floor(extract(epoch from at)/300)*300',
    ),
    # Grafana's compatibility rule: $__timeGroup followed by a comma gets the alias.
    ("SELECT $__timeGroup(at, 1h), 2", 'SELECT floor(extract(epoch from at)/3600)*3600 AS "time", 2'),
    (
        "$__interval_ms $__interval $__unixEpochFrom() $__unixEpochTo() $__unixEpochFilter(t)",
        "60000 1m 1710406800 1710428400 t >= 1710406800 AND t <= 1710428400",
    ),
]


@pytest.mark.parametrize(("sql", "expanded"), MACROS)
def test_macros_expand_as_grafana_writes_them(sql: str, expanded: str) -> None:
    assert expand(sql, RANGE, MINUTE, {}) == expanded


def test_a_local_time_range_is_written_in_utc() -> None:
    paris = datetime(2024, 3, 14, 11, 0, 0, 500000, tzinfo=ZoneInfo("Europe/Paris"))
    assert rfc3339(paris) == "2024-03-14T10:00:00.5Z"


def test_single_value_variables_are_bare_and_multi_value_ones_quoted_lists() -> None:
    variables = {
        "campaign": Variable(["0b5e3c1e-7d1a-4c4e-9f5e-2f1d6a9b8c7d"]),
        "trunk": Variable(["carrier-east", "o'brien"], multi=True),
    }
    sql = "WHERE campaign_id = '$campaign' AND trunk IN (${trunk})"
    assert expand(sql, RANGE, MINUTE, variables) == (
        "WHERE campaign_id = '0b5e3c1e-7d1a-4c4e-9f5e-2f1d6a9b8c7d' AND trunk IN ('carrier-east','o''brien')"
    )


def test_a_quote_in_a_single_value_is_doubled() -> None:
    assert expand("'$name'", RANGE, MINUTE, {"name": Variable(["it's"])}) == "'it''s'"


@pytest.mark.parametrize(
    ("sql", "variables"),
    [
        ("WHERE trunk IN ($trunk)", {}),
        ("SELECT $__timeBucket(at)", {}),
        ("SELECT $__timeGroup(at)", {}),
        ("'$campaign'", {"campaign": Variable(["a", "b"])}),
    ],
)
def test_what_grafana_would_refuse_is_refused(sql: str, variables: dict[str, Variable]) -> None:
    with pytest.raises(MacroError):
        expand(sql, RANGE, MINUTE, variables)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("'1m'", 60), ("5m", 300), ("2h", 7200), ("1d", 86400), ("200ms", 0.2)]
)
def test_intervals_parse(text: str, seconds: float) -> None:
    assert parse_interval(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "200ms"), (15, "15s"), (90, "1m"), (3600, "1h"), (172800, "2d")]
)
def test_intervals_format_in_their_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_interval(timedelta(seconds=seconds)) == text
