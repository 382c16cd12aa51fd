"""A panel's SQL as Grafana's PostgreSQL data source sends it: template variables replaced as
Grafana's SQL data sources format them, then the server-side macros ($__timeFilter,
$__timeGroupAlias, ...) expanded with the same texts as Grafana's macro engine
(pkg/tsdb/grafana-postgresql-datasource/macros.go and sqleng's global replacements), so the
statement run here is the one Grafana would run. Used by the dashboards' tests and benchmark."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
"""Grafana's own pattern: a macro's arguments hold no parenthesis."""
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
INTERVAL = re.compile(r"(\d+)(ms|s|m|h|d|w)")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class MacroError(ValueError):
    """A macro or variable Grafana would refuse (or that these dashboards must not use)."""


@dataclass(frozen=True)
class Variable:
    """A template variable's current value(s), and how Grafana formats it: a multi-value or
    include-All variable as quoted literals joined by commas, a single value as it is (single
    quotes doubled), to be written inside quotes in the SQL."""

    values: Sequence[str]
    multi: bool = False

    def sql(self) -> str:
        if self.multi:
            return ",".join("'" + v.replace("'", "''") + "'" for v in self.values)
        if len(self.values) != 1:
            raise MacroError(f"a single-value variable has {len(self.values)} values")
        return self.values[0].replace("'", "''")


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime


def parse_interval(text: str) -> timedelta:
    """Grafana's interval notation ('30s', '1m', '5m', '1h', '1d'), quotes allowed."""
    found = INTERVAL.fullmatch(text.strip().strip("'"))
    if found is None:
        raise MacroError(f"not an interval: {text!r}")
    return timedelta(seconds=int(found[1]) * UNITS[found[2]])


def format_interval(interval: timedelta) -> str:
    """$__interval's text (gtime.FormatInterval): the largest whole unit."""
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if interval.total_seconds() >= seconds:
            return f"{int(interval.total_seconds() // seconds)}{unit}"
    return f"{max(1, int(interval.total_seconds() * 1000))}ms"


def rfc3339(moment: datetime) -> str:
    """Go's RFC3339Nano in UTC: fractional seconds only when there are any, trailing zeros cut."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def substitute_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Template variables replaced; Grafana's own ($__interval ...) are left to `expand`."""

    def value(found: re.Match[str]) -> str:
        name = found[1] or found[2]
        if name.startswith("__"):
            return found[0]
        if name not in variables:
            raise MacroError(f"undefined template variable ${name}")
        return variables[name].sql()

    return VARIABLE.sub(value, sql)


def _group(args: list[str]) -> str:
    if len(args) < 2:
        raise MacroError("$__timeGroup needs a column and an interval")
    seconds = parse_interval(args[1]).total_seconds()
    return f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"


def _macro(name: str, args: list[str], time_range: TimeRange) -> str:
    start, end = rfc3339(time_range.start), rfc3339(time_range.end)
    match name:
        case "__time":
            return f'{args[0]} AS "time"'
        case "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        case "__timeFilter":
            return f"{args[0]} BETWEEN '{start}' AND '{end}'"
        case "__timeFrom":
            return f"'{start}'"
        case "__timeTo":
            return f"'{end}'"
        case "__timeGroup":
            return _group(args)
        case "__timeGroupAlias":
            return _group(args) + ' AS "time"'
        case "__unixEpochFilter":
            first, last = int(time_range.start.timestamp()), int(time_range.end.timestamp())
            return f"{args[0]} >= {first} AND {args[0]} <= {last}"
    raise MacroError(f"unknown macro ${name}")


def expand(sql: str, time_range: TimeRange, interval: timedelta, variables: Mapping[str, Variable]) -> str:
    """The statement Grafana runs for a panel's `rawSql` over `time_range` at `interval`."""
    sql = substitute_variables(sql, variables)
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_range.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(time_range.end.timestamp())))

    def replace(found: re.Match[str]) -> str:
        name, args = found[1], [a.strip() for a in found[2].split(",")]
        # Grafana's compatibility rule: $__timeGroup(...) directly followed by a comma is a
        # select-list item written before $__timeGroupAlias existed, and gets the alias.
        if name == "__timeGroup" and sql[found.end() : found.end() + 1] == ",":
            name = "__timeGroupAlias"
        return _macro(name, args, time_range)

    sql = MACRO.sub(replace, sql)
    if "$__" in sql:
        raise MacroError(f"a Grafana macro was left unexpanded: {sql}")
    return sql
