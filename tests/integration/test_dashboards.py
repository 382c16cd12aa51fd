"""The provisioned Grafana dashboards (deploy/grafana/): well formed, every query on a data source
the provisioning defines, every variable defined, every PromQL metric one the exporters promise
(the observability contract), and every SQL query (panels' and variables') run as Grafana runs
it (macros and variables expanded, as the role sespcl_grafana) against PostgreSQL, over rows
this test writes in a transaction it rolls back (tests/integration/dashboard_story.py), giving
exactly those rows' figures. DATABASE_URL: the stack's (its owner may SET ROLE sespcl_grafana)
or a superuser's."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from bench.grafana_dashboards import (
    DASHBOARDS,
    GRAFANA,
    POSTGRES_TYPE,
    PROMETHEUS_TYPE,
    Query,
    act_as_grafana,
    load_dashboards,
    panel_interval,
    panels,
    promql_metric_names,
    provisioned_datasources,
    queries,
    variable_queries,
)
from bench.grafana_macros import VARIABLE, TimeRange, Variable, expand
from tests.integration.dashboard_checks import CHECKS
from tests.integration.dashboard_story import HOUR_START, Story, write

CONTRACT_METRICS = frozenset(
    {
        "sespcl_calls",
        "sespcl_live_calls",
        "sespcl_dial_pace_cps",
        "sespcl_node_pace_cps",
        "sespcl_queue_depth",
        "sespcl_audio_prompts",
        "sespcl_audio_bytes",
        "sespcl_http_requests_total",
        "sespcl_calls_finished_total",
        "sespcl_call_attempts_total",
        "sespcl_node_up",
        "sespcl_node_live_channels",
        "sespcl_render_queue_depth",
        "sespcl_events_outbox_depth",
        "sespcl_digits_total",
        "sespcl_answered_by_total",
        "sespcl_webhook_deliveries_total",
        "sespcl_webhook_lag_seconds",
        "sespcl_dispatchers_live",
        "asterisk_channels_count",
        "asterisk_core_uptime_seconds",
    }
)
"""The metric names of the observability contract (issue 19), as Prometheus exposes them."""
CONTRACT_HISTOGRAMS = frozenset(
    {
        "sespcl_http_request_seconds",
        "sespcl_originate_latency_seconds",
        "sespcl_answer_latency_seconds",
        "sespcl_call_duration_seconds",
        "sespcl_render_seconds",
    }
)
GRAFANA_VARIABLES = frozenset({"__interval", "__interval_ms", "__rate_interval", "__range", "__from", "__to"})

ALL_DASHBOARDS = load_dashboards()
SQL_QUERIES = [q for d in ALL_DASHBOARDS.values() for q in (*variable_queries(d), *queries(d, POSTGRES_TYPE))]


def test_there_are_the_four_dashboards_each_with_a_stable_uid() -> None:
    uids = {name: board["uid"] for name, board in ALL_DASHBOARDS.items()}
    assert uids == {
        "calls.json": "sespcl-calls",
        "campaigns.json": "sespcl-campaigns",
        "carriers.json": "sespcl-carriers",
        "farm.json": "sespcl-farm",
    }
    for board in ALL_DASHBOARDS.values():
        assert 36 <= board["schemaVersion"] <= 41, board["title"]


def test_panel_ids_are_unique_in_each_dashboard() -> None:
    for board in ALL_DASHBOARDS.values():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), board["title"]
        assert all(isinstance(i, int) for i in ids)


def test_every_panel_and_query_names_a_provisioned_data_source() -> None:
    sources = provisioned_datasources()
    assert set(sources.values()) == {POSTGRES_TYPE, PROMETHEUS_TYPE}
    for board in ALL_DASHBOARDS.values():
        for panel in panels(board):
            refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
            for ref in refs:
                assert sources.get(ref["uid"]) == ref["type"], (board["title"], panel["title"], ref)
        for variable in board["templating"]["list"]:
            assert sources.get(variable["datasource"]["uid"]) == variable["datasource"]["type"]


def test_both_kinds_of_panel_are_in_use() -> None:
    for board in ALL_DASHBOARDS.values():
        assert list(queries(board, POSTGRES_TYPE)), board["title"]
        assert list(queries(board, PROMETHEUS_TYPE)), board["title"]


def _variables_used(text: str) -> set[str]:
    return {found[1] or found[2] for found in VARIABLE.finditer(text)}


def test_every_variable_a_query_uses_is_defined() -> None:
    for board in ALL_DASHBOARDS.values():
        defined = {v["name"] for v in board["templating"]["list"]}
        for panel in panels(board):
            for target in panel["targets"]:
                used = _variables_used(target.get("rawSql") or target.get("expr") or "")
                undefined = {name for name in used if not name.startswith("__")} - defined
                builtins = {
                    name for name in used if name.startswith("__") and not re.match(r"__(time|unix)", name)
                }
                assert not undefined, (board["title"], panel["title"], undefined)
                assert builtins <= GRAFANA_VARIABLES, (board["title"], panel["title"], builtins)


def test_the_expected_template_variables() -> None:
    found = {
        b["uid"]: {v["name"]: (v["multi"], v["includeAll"]) for v in b["templating"]["list"]}
        for b in ALL_DASHBOARDS.values()
    }
    assert found == {
        "sespcl-calls": {"trunk": (True, True)},
        "sespcl-campaigns": {"campaign": (False, False)},
        "sespcl-carriers": {"trunk": (True, True)},
        "sespcl-farm": {"node": (True, True)},
    }


def test_promql_reads_only_metrics_of_the_contract() -> None:
    allowed = CONTRACT_METRICS | {
        f"{h}_{part}" for h in CONTRACT_HISTOGRAMS for part in ("bucket", "sum", "count")
    }
    read: set[str] = set()
    for board in ALL_DASHBOARDS.values():
        for query in queries(board, PROMETHEUS_TYPE):
            names = promql_metric_names(query.text)
            assert names, query.name
            assert names <= allowed, (query.name, names - allowed)
            read |= names
    assert "sespcl_originate_latency_seconds_bucket" in read and "sespcl_node_up" in read


def test_promql_metric_names_are_told_from_functions_labels_and_durations() -> None:
    expr = (
        "histogram_quantile(0.9, sum by (le, trunk) (rate(sespcl_answer_latency_seconds_bucket"
        '{trunk=~"$trunk", node!="n1"}[$__rate_interval]))) / on (trunk) group_left sespcl_node_up offset 5m'
    )
    assert promql_metric_names(expr) == {"sespcl_answer_latency_seconds_bucket", "sespcl_node_up"}


def test_provisioning_takes_every_secret_and_address_from_the_environment() -> None:
    text = (GRAFANA / "provisioning" / "datasources" / "sespcl.yaml").read_text()
    postgres = next(s for s in yaml.safe_load(text)["datasources"] if s["type"] == POSTGRES_TYPE)
    assert postgres["user"] == "sespcl_grafana"
    assert postgres["secureJsonData"]["password"] == "$__env{SESPCL_DB_GRAFANA_PASSWORD}"
    assert postgres["url"].startswith("${") and postgres["jsonData"]["database"].startswith("${")
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sespcl.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "${SESPCL_GRAFANA_DASHBOARDS}"
    assert DASHBOARDS.is_dir()


def test_every_sql_query_has_its_figures_checked() -> None:
    assert {q.name.rsplit(" (", 1)[0] for q in SQL_QUERIES} == set(CHECKS)


# ---- the SQL, run as Grafana runs it ------------------------------------------------------------


@pytest.fixture(scope="module")
def grafana() -> Iterator[tuple[psycopg.Connection[dict[str, Any]], Story]]:
    """A transaction holding the story, acting as sespcl_grafana from then on; rolled back."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set: the stack's database (make test), or a database of your own")
    with psycopg.connect(url, row_factory=dict_row) as conn, conn.transaction(force_rollback=True):
        story = Story()
        write(conn, story)
        act_as_grafana(conn)
        yield conn, story


def _variables(story: Story) -> dict[str, Variable]:
    return {
        "trunk": Variable([story.east, story.west], multi=True),
        "node": Variable(list(story.nodes), multi=True),
        "campaign": Variable([str(story.campaign_id)]),
    }


@pytest.mark.parametrize("query", SQL_QUERIES, ids=lambda q: q.name)
def test_sql_query_gives_the_figures_of_the_rows_written(
    grafana: tuple[psycopg.Connection[dict[str, Any]], Story], query: Query
) -> None:
    conn, story = grafana
    hour = timedelta(hours=1)
    sql = expand(
        query.text, TimeRange(HOUR_START, HOUR_START + hour), panel_interval(query, hour), _variables(story)
    )
    with conn.transaction():  # a savepoint: one query's failure leaves the story for the others
        rows = conn.execute(sql.encode()).fetchall()
    CHECKS[query.name.rsplit(" (", 1)[0]](rows, story)


def test_grafanas_role_reads_the_views_and_nothing_else(
    grafana: tuple[psycopg.Connection[dict[str, Any]], Story],
) -> None:
    conn, _ = grafana
    for statement in (
        "SELECT count(*) FROM calls",
        "SELECT ami_secret FROM nodes",
        "SELECT data FROM call_events",
        "INSERT INTO dnc (number) VALUES ('+14155550100')",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(statement.encode())
    assert conn.execute("SELECT current_user AS who").fetchone() == {"who": "sespcl_grafana"}


def test_ended_calls_count_as_the_final_status_events(
    grafana: tuple[psycopg.Connection[dict[str, Any]], Story],
) -> None:
    """grafana_calls_ended reads calls (an index-only scan) for what the status events say."""
    conn, story = grafana
    where = {"start": HOUR_START, "end": HOUR_START + timedelta(hours=1), "trunks": [story.east, story.west]}
    ended = conn.execute(
        "SELECT status, count(*) AS n FROM grafana_calls_ended WHERE ended_at BETWEEN %(start)s AND %(end)s "
        "AND trunk = ANY(%(trunks)s) GROUP BY status ORDER BY status",
        where,
    ).fetchall()
    final_events = conn.execute(
        "SELECT status, count(*) AS n FROM grafana_status_changes WHERE at BETWEEN %(start)s AND %(end)s "
        "AND trunk = ANY(%(trunks)s) AND status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled') "
        "GROUP BY status ORDER BY status",
        where,
    ).fetchall()
    assert ended == final_events and sum(r["n"] for r in ended) == len(story.calls)
