"""PostgreSQL connections and the schema migration."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from orchestrator.domain.errors import Unavailable

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema.sql"
_MIGRATION_LOCK = 0x5E5BC1  # advisory lock: two migrations never interleave

Connection = psycopg.AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Connection]


class NoRow(RuntimeError):
    """A statement that returns a row by construction (an aggregate, a RETURNING of rows just
    written) returned none: a broken invariant, not a database failure."""


async def one_row(cur: psycopg.AsyncCursor[DictRow]) -> DictRow:
    """The one row `cur`'s statement returns by construction; NoRow rather than a TypeError on
    None further on."""
    row = await cur.fetchone()
    if row is None:
        raise NoRow("the statement returned no row")
    return row


async def open_pool(url: str, *, name: str, max_size: int = 10, prepare: bool = True) -> Pool:
    """`name`: the process's role, shown to operators as pg_stat_activity.application_name.
    `prepare=False`: no server-side prepared statements. A prepared `SELECT *` pins its
    result's columns, and fails ("cached plan must not change result type") on every pooled
    connection once a migration adds or drops a column under a running process."""
    kwargs: dict[str, Any] = {"row_factory": dict_row, "application_name": name}
    if not prepare:
        kwargs["prepare_threshold"] = None
    pool = Pool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        connection_class=Connection,
        kwargs=kwargs,
    )
    try:
        await pool.open(wait=True, timeout=10)
    except Exception as exc:  # psycopg_pool raises PoolTimeout with the cause chained
        raise Unavailable(f"PostgreSQL does not answer at {_redact(url)}: {exc}") from exc
    return pool


@asynccontextmanager
async def own_connection(
    url: str, name: str, *, autocommit: bool = False
) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
    """A connection of its own, outside any pool, closed on the way out: for the upkeep's long
    statements (VACUUM, a prune), which must not hold a pooled connection meanwhile."""
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=autocommit, row_factory=dict_row, application_name=name
    )
    try:
        yield conn
    finally:
        await conn.close()


def connect(url: str, name: str = "sespcl-cli") -> psycopg.Connection[DictRow]:
    try:
        return psycopg.connect(url, row_factory=dict_row, autocommit=False, application_name=name)
    except psycopg.OperationalError as exc:
        raise Unavailable(f"PostgreSQL does not answer at {_redact(url)}: {exc}") from exc
    except psycopg.Error as exc:  # e.g. a DATABASE_URL that is not a connection string
        raise Unavailable(f"cannot connect to PostgreSQL with {_redact(url)}: {exc}") from exc


def migrate(url: str, schema_path: Path = SCHEMA_PATH, attempts: int = 8) -> None:
    """Apply schema.sql in one transaction; every statement in it is idempotent.

    A running stack holds locks on the tables an ALTER needs: give up waiting after a few
    seconds and try again, rather than deadlock or stall the dispatcher's claims.
    """
    sql = schema_path.read_text(encoding="utf-8")
    for attempt in range(1, attempts + 1):
        with connect(url) as conn:
            try:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute("SET LOCAL lock_timeout = '3s'")
                conn.execute(sql.encode("utf-8"))
                conn.commit()
                return
            except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable) as exc:
                conn.rollback()
                if attempt == attempts:
                    raise Unavailable(f"the schema could not be applied: tables stay locked ({exc})") from exc
            time.sleep(0.5 * attempt)


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<invalid DATABASE_URL>"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())
