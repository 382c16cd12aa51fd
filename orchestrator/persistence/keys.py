"""API keys in PostgreSQL: the API reads one by its id; `sespcl keys` adds, lists, revokes.

The statements here are exactly those schema.sql lists for the api_keys grants.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg_pool import PoolTimeout

from orchestrator.domain.errors import Conflict, NotFound, Unavailable
from orchestrator.domain.keys import NewKey, Scope
from orchestrator.persistence.db import Pool

Row = dict[str, Any]


class KeyStore:
    """What the API process runs on api_keys: a SELECT by id, and an UPDATE of last_used_at."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def by_id(self, key_id: str) -> Row | None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT id, name, key_hash, scopes, rate_per_s, allow_countries, allow_premium, "
                    "revoked_at FROM api_keys WHERE id = %s",
                    (key_id,),
                )
                return await cur.fetchone()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise Unavailable("the key store (PostgreSQL) does not answer", code="unavailable") from exc

    async def touch(self, key_id: str) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", (key_id,))
        except psycopg.Error as exc:  # any refusal of the write: the caller only logs it
            raise Unavailable("last_used_at could not be written", code="unavailable") from exc


def add_key(
    conn: psycopg.Connection[DictRow],
    *,
    name: str,
    key: NewKey,
    scopes: frozenset[Scope],
    rate_per_s: float,
    countries: frozenset[str] | None,
    premium: bool,
) -> Row:
    try:
        cur = conn.execute(
            """
            INSERT INTO api_keys (id, name, key_hash, scopes, rate_per_s, allow_countries, allow_premium)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING name, scopes, rate_per_s, allow_countries, allow_premium, created_at
            """,
            (
                key.id,
                name,
                key.digest,
                sorted(s.value for s in scopes),
                rate_per_s,
                sorted(countries) if countries is not None else None,
                premium,
            ),
        )
    except psycopg.errors.UniqueViolation as exc:
        conn.rollback()
        raise Conflict(
            f"a key named {name} exists (a revoked key keeps its name, so created_by stays unambiguous)",
            code="key-exists",
        ) from exc
    row = cur.fetchone()
    assert row is not None
    return row


def list_keys(conn: psycopg.Connection[DictRow]) -> list[Row]:
    """Every key, revoked ones too; never the hash."""
    cur = conn.execute(
        "SELECT id, name, scopes, rate_per_s, allow_countries, allow_premium, created_at, last_used_at, "
        "revoked_at FROM api_keys ORDER BY created_at, name"
    )
    return cur.fetchall()


def revoke_key(conn: psycopg.Connection[DictRow], name: str) -> tuple[Row, bool]:
    """Revoke the key; returns (its row, whether this call revoked it: False if it was already)."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL "
        "RETURNING name, revoked_at",
        (name,),
    )
    row = cur.fetchone()
    if row is not None:
        return row, True
    cur = conn.execute("SELECT name, revoked_at FROM api_keys WHERE name = %s", (name,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no key named {name}", code="no-such-key")
    return row, False
