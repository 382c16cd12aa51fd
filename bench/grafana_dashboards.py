"""The provisioned Grafana dashboards as data: their panels, each panel's queries (SQL for the
PostgreSQL data source, PromQL for Prometheus), their template variables, and the data sources
the provisioning files define. Read by the dashboards' tests and `make bench-dashboards`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.rows import tuple_row

from bench.grafana_macros import parse_interval

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
POSTGRES_TYPE = "grafana-postgresql-datasource"
PROMETHEUS_TYPE = "prometheus"
GRAFANA_ROLE = "sespcl_grafana"

# Grafana's own rounding of a range / data points into an interval (kbn.roundInterval), the part
# a dashboard's ranges reach: (below this many seconds, the interval).
_ROUNDING = (
    (17.5, 15), (25, 20), (45, 30), (90, 60), (210, 120), (450, 300), (750, 600), (1050, 900),
    (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600),
)  # fmt: skip


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    datasource_uid: str
    text: str
    """rawSql for PostgreSQL, expr for Prometheus."""
    interval: timedelta | None
    """The panel's minimum interval, when it sets one."""

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} ({self.ref})"


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Each dashboard file's JSON, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def provisioned_datasources() -> dict[str, str]:
    """uid -> type, for every data source the provisioning files define."""
    found: dict[str, str] = {}
    for path in sorted(DATASOURCES.glob("*.yaml")):
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            found[str(source["uid"])] = str(source["type"])
    return found


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any], datasource_type: str) -> Iterator[Query]:
    """The queries of one data source type, each with the data source it names (its own, else
    its panel's)."""
    sources = provisioned_datasources()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid", "")
            if sources.get(uid) != datasource_type:
                continue
            text = target.get("rawSql") if datasource_type == POSTGRES_TYPE else target.get("expr")
            interval = parse_interval(panel["interval"]) if panel.get("interval") else None
            yield Query(dashboard["title"], panel["title"], target["refId"], uid, str(text), interval)


def variable_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    """The SQL that fills each query variable."""
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            uid = variable["datasource"]["uid"]
            yield Query(dashboard["title"], f"${variable['name']}", "var", uid, str(variable["query"]), None)


def panel_interval(query: Query, time_range: timedelta, data_points: int = 1000) -> timedelta:
    """$__interval as Grafana computes it: the range over the panel's data points, rounded,
    never below the panel's own minimum."""
    raw = time_range.total_seconds() / data_points
    rounded = next((step for below, step in _ROUNDING if raw < below), 43200)
    chosen = timedelta(seconds=rounded)
    return max(chosen, query.interval) if query.interval else chosen


PROMQL_WORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                          "unless", "offset", "inf", "nan"})  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NOT_NAMES = re.compile(
    r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions (followed
    by a parenthesis), keywords, label names (in selectors and by/without clauses), strings,
    durations or numbers."""
    text = _NOT_NAMES.sub(" ", _STRINGS.sub('""', expr))
    names = set()
    for found in _IDENTIFIER.finditer(text):
        following = text[found.end() :].lstrip()
        if following.startswith("(") or found[0].lower() in PROMQL_WORDS:
            continue
        names.add(found[0])
    return names


def act_as_grafana(conn: psycopg.Connection[Any]) -> None:
    """SET ROLE to Grafana's role, with the settings its own logins get (roles.sql: read-only
    transactions, no JIT, the statement timeout), for this transaction only."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(f"SET LOCAL ROLE {GRAFANA_ROLE}")
        settings = cur.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting "
            "WHERE setrole = %s::regrole AND setdatabase = 0",
            (GRAFANA_ROLE,),
        ).fetchall()
        for (setting,) in settings:
            name, _, value = str(setting).partition("=")
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
