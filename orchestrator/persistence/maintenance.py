"""Table upkeep on a server whose autovacuum is off: read the activity, VACUUM or ANALYZE.

Its own connection, in autocommit (VACUUM cannot run in a transaction), outside the dispatcher's
pool: a VACUUM of a large `calls` takes seconds, and claims must not wait for a pooled
connection meanwhile.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from orchestrator.domain.maintenance import TableActivity, Upkeep
from orchestrator.persistence.db import own_connection

_UPKEEP_LOCK = 0x5E5BC2
"""Advisory lock: with several dispatchers, one of them does the upkeep at a time."""


class TableUpkeepStore:
    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name

    def _connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[DictRow]]:
        return own_connection(self._url, self._name, autocommit=True)

    async def autovacuum_on(self) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute("SELECT current_setting('autovacuum') = 'on' AS on")
            row = await cur.fetchone()
            return bool(row and row["on"])

    async def activity(self) -> list[TableActivity]:
        """This schema's tables, as the statistics collector last counted them."""
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT relname, n_live_tup, n_dead_tup, n_ins_since_vacuum, n_mod_since_analyze "
                "FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname"
            )
            return [
                TableActivity(
                    table=row["relname"],
                    live_rows=int(row["n_live_tup"]),
                    dead_rows=int(row["n_dead_tup"]),
                    inserted_since_vacuum=int(row["n_ins_since_vacuum"]),
                    modified_since_analyze=int(row["n_mod_since_analyze"]),
                )
                for row in await cur.fetchall()
            ]

    async def run(self, work: list[tuple[str, Upkeep]]) -> list[tuple[str, Upkeep, float]] | None:
        """VACUUM (ANALYZE) or ANALYZE each table. None when another process holds the upkeep
        lock. Returns (table, upkeep, seconds) for each table done."""
        done: list[tuple[str, Upkeep, float]] = []
        async with self._connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (_UPKEEP_LOCK,))
            row = await cur.fetchone()
            if not (row and row["got"]):
                return None
            for table, upkeep in work:  # the lock goes with the connection
                statement = "VACUUM (ANALYZE) {}" if upkeep is Upkeep.VACUUM else "ANALYZE {}"
                started = time.monotonic()
                await conn.execute(sql.SQL(statement).format(sql.Identifier(table)))
                done.append((table, upkeep, time.monotonic() - started))
        return done
