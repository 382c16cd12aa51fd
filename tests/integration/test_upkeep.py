"""On a server whose autovacuum is off, the stack's upkeep process (`sespcl db upkeep`, as the schema's
owner) vacuums tables that need it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

Db = psycopg.Connection[dict[str, Any]]


def test_upkeep_vacuums_a_table_full_of_dead_rows_when_autovacuum_is_off(db: Db) -> None:
    if db.execute("SELECT current_setting('autovacuum') AS v").fetchone()["v"] == "on":  # type: ignore[index]
        pytest.skip("this server's autovacuum is on: upkeep rightly leaves the tables to it")
    table = f"upkeep_probe_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE TABLE {table} (n int)")
    try:
        db.execute(f"INSERT INTO {table} SELECT generate_series(1, 500)")
        db.execute(f"DELETE FROM {table}")  # 500 dead rows, none live: past autovacuum's rule
        deadline = time.monotonic() + 60  # upkeep looks every 15 s
        row: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            row = db.execute(
                "SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,)
            ).fetchone()
            if row and row["vacuum_count"] > 0:
                break
            time.sleep(1)
        assert row is not None and row["vacuum_count"] == 1, row
        assert row["n_dead_tup"] == 0, row
    finally:
        db.execute(f"DROP TABLE {table}")
