"""`make bench-dashboards`: every SQL panel of the provisioned Grafana dashboards over 10 million
call_events, against a bare count in the same run.

In a database of its own (made from schema.sql, `sespcl_bench_dashboards`, with
SESPCL_DATABASE_ADMIN_URL; the stack's is never touched), filled with a few days of a farm's
history (bench/dashboard_data.py: campaigns and single calls over four carriers and three nodes,
each attempt with the events its outcome records), then VACUUM (ANALYZE), as the upkeep leaves
tables. `--keep` reuses a history already there. Each panel's SQL (and each variable's) is
expanded as Grafana sends it (bench/grafana_macros.py) for the last `--hours`, every trunk and
node, and the campaign with the most keys pressed, then run `--repeat` times as the role Grafana uses
(sespcl_grafana: roles.sql must have made it on the server). Printed per query: its median and
max ms, its rows, and `SLOW` from 200 ms on. The baseline is a count of one hour of call_events
by its time index.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

from bench import dashboard_data as history
from bench.grafana_dashboards import (
    GRAFANA_ROLE,
    POSTGRES_TYPE,
    Query,
    act_as_grafana,
    load_dashboards,
    panel_interval,
    queries,
    variable_queries,
)
from bench.grafana_macros import TimeRange, Variable, expand
from orchestrator.persistence.db import migrate

OWN_DATABASE = "sespcl_bench_dashboards"
BUDGET_MS = 200.0
BASELINE = "SELECT count(*) FROM call_events WHERE $__timeFilter(at)"
HISTORY_TABLES = ", ".join(
    (
        "calls",
        "call_attempts",
        "call_events",
        "call_status_counts",
        "campaigns",
        "campaign_audio",
        "trunks",
        "nodes",
        "dispatchers",
    )
)


def prepare_database(admin_url: str) -> str:
    """The benchmark's own database, made if missing and migrated; its URL (the admin's role)."""
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    server = psycopg.conninfo.make_conninfo("", **(info | {"dbname": "postgres"}))
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GRAFANA_ROLE,)).fetchone() is None:
            sys.exit(f"no role {GRAFANA_ROLE} on this server: run deploy/postgres/roles.sql (make up does)")
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (OWN_DATABASE,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{OWN_DATABASE}"')
    url = psycopg.conninfo.make_conninfo("", **(info | {"dbname": OWN_DATABASE}))
    migrate(url)
    return url


def lower_priority(conn: psycopg.Connection[Any]) -> None:
    """The fill's server process yields the CPU to everything else, as this process does (nice),
    when the server runs here and we may."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        if pid is not None:
            os.setpriority(os.PRIO_PROCESS, int(pid[0]), 10)
    except OSError:
        pass  # another host's server, or not ours to renice: it runs at its own priority


def fill_history(conn: psycopg.Connection[Any], events: int, days: int) -> None:
    conn.execute(f"TRUNCATE {HISTORY_TABLES} CASCADE")
    for carrier in history.CARRIERS:
        conn.execute(
            "INSERT INTO trunks (name, host, max_channels) VALUES (%s, %s, 200)",
            (carrier.name, f"sip.{carrier.name}.example"),
        )
    for name, driver in history.NODES:
        conn.execute(
            "INSERT INTO nodes (name, ami_host, ami_secret, driver, ari_url, ari_secret, state, pace_cps, "
            "version, last_seen_at) VALUES (%s, %s, 'bench-secret', %s, 'http://127.0.0.1:8088/ari', "
            "'bench-secret', 'up', 40, '22.5.0', now())",
            (name, f"10.0.0.{name[1:]}", driver),
        )
    conn.execute("INSERT INTO dispatchers (id, host, pid) VALUES ('bench-1', 'dialer-1', 4242)")
    campaigns = [uuid.uuid4() for _ in history.CAMPAIGNS]
    for campaign_id, campaign in zip(campaigns, history.CAMPAIGNS):
        conn.execute(
            "INSERT INTO campaigns (id, name, tts_template, tts_voice, max_attempts, created_at) "
            "VALUES (%s, %s, %s, 'en-us', %s, now() - make_interval(days => %s))",
            (campaign_id, campaign.name, history.PROMPT, campaign.max_attempts, days),
        )
    started = time.monotonic()

    def report(made: int) -> None:
        rate = made / max(time.monotonic() - started, 0.001)
        print(f"\r  fill     {made:>11,} events  {rate:,.0f}/s", end="", flush=True)

    made = history.fill(conn, events, days, campaigns, report)
    queued = history.queue_running_campaign(conn, campaigns[-1])
    print(f"\n  fill     {made:,} events, {queued:,} queued calls, in {time.monotonic() - started:.0f} s")
    conn.execute("VACUUM (ANALYZE)")


def figures(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM call_events), (SELECT count(*) FROM call_attempts), "
        "(SELECT count(*) FROM calls), pg_size_pretty(pg_total_relation_size('call_events'))"
    ).fetchone()
    assert row is not None
    return f"{row[0]:,} call_events ({row[3]} with indexes), {row[1]:,} attempts, {row[2]:,} calls"


def choices(conn: psycopg.Connection[Any]) -> dict[str, Variable]:
    """Every trunk, every node, and the campaign where the most callees pressed keys (it detects
    machines too: every campaign panel has figures)."""
    trunks = [r[0] for r in conn.execute("SELECT name FROM trunks ORDER BY name")]
    nodes = [r[0] for r in conn.execute("SELECT name FROM nodes ORDER BY name")]
    biggest = conn.execute(
        "SELECT campaign_id::text FROM calls WHERE campaign_id IS NOT NULL AND digits IS NOT NULL "
        "GROUP BY campaign_id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    assert biggest is not None, "the history has campaigns"
    return {
        "trunk": Variable(trunks, multi=True),
        "node": Variable(nodes, multi=True),
        "campaign": Variable([biggest[0]]),
    }


def run_as_grafana(conn: psycopg.Connection[Any], sql: str, repeat: int) -> tuple[list[float], int]:
    """Milliseconds of each run (the statement and fetching its rows), and the rows it returns."""
    samples, rows = [], 0
    for _ in range(repeat):
        with conn.transaction():
            act_as_grafana(conn)
            began = time.perf_counter()
            rows = len(conn.execute(sql.encode()).fetchall())
            samples.append((time.perf_counter() - began) * 1000)
    return samples, rows


def line(label: str, samples: list[float], rows: int, baseline: float) -> bool:
    median = statistics.median(samples)
    slow = median >= BUDGET_MS
    flag = "SLOW" if slow else ""
    print(
        f"  {label:<72.72} {median:8.1f} ms  max {max(samples):7.1f}  x{median / baseline:5.1f}"
        f"  {rows:>5} rows  {flag}"
    )
    return slow


def measure(conn: psycopg.Connection[Any], hours: float, repeat: int) -> int:
    """Every SQL query of every dashboard; returns how many took BUDGET_MS or more."""
    end = datetime.now().astimezone()
    span = timedelta(hours=hours)
    window = TimeRange(end - span, end)
    variables = choices(conn)
    base_sql = expand(BASELINE, TimeRange(end - timedelta(hours=1), end), timedelta(minutes=1), {})
    base_samples, base_rows = run_as_owner(conn, base_sql, repeat)
    baseline = statistics.median(base_samples)
    print(
        f"  last {hours:g} h, every trunk and node, campaign {variables['campaign'].values[0]}, "
        f"{repeat} runs each, as {GRAFANA_ROLE}"
    )
    line("baseline: count(*) of one hour of call_events", base_samples, base_rows, baseline)
    slow = 0
    for dashboard in load_dashboards().values():
        found: list[Query] = [*variable_queries(dashboard), *queries(dashboard, POSTGRES_TYPE)]
        for query in found:
            sql = expand(query.text, window, panel_interval(query, span), variables)
            samples, rows = run_as_grafana(conn, sql, repeat)
            slow += line(query.name, samples, rows, baseline)
    return slow


def run_as_owner(conn: psycopg.Connection[Any], sql: str, repeat: int) -> tuple[list[float], int]:
    """The baseline, as the database's owner: Grafana's role may not read call_events itself."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        conn.execute(sql.encode()).fetchall()
        samples.append((time.perf_counter() - began) * 1000)
    return samples, 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=4, help="the history's length")
    parser.add_argument("--hours", type=float, default=6, help="the dashboards' time range")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="reuse the history already in the database")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("SESPCL_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a superuser's URL (it makes the database, and acts as sespcl_grafana)",
    )
    args = parser.parse_args()
    url = prepare_database(args.admin_url)
    with psycopg.connect(url, autocommit=True) as conn:
        if not args.keep:
            lower_priority(conn)
            fill_history(conn, args.events, args.days)
        print(f"  data     {figures(conn)}")
        slow = measure(conn, args.hours, args.repeat)
    print(
        f"  {slow} of the queries took {BUDGET_MS:.0f} ms or more"
        if slow
        else f"  every query answered in under {BUDGET_MS:.0f} ms"
    )


if __name__ == "__main__":
    main()
