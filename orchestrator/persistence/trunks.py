"""Trunks in PostgreSQL: the `trunks` row and its PJSIP realtime rows, always written together."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from orchestrator.domain.errors import Conflict, NotFound
from orchestrator.domain.trunk import TrunkSpec, pjsip_rows

PS_TABLES = ("ps_endpoints", "ps_aors", "ps_auths", "ps_endpoint_id_ips")
TRUNK_SETTINGS = (  # the trunks columns an operator sets (besides the name)
    "host",
    "port",
    "transport",
    "tls_verify",
    "username",
    "from_user",
    "from_domain",
    "caller_id",
    "codecs",
    "max_channels",
    "cps",
    "is_default",
)


def realtime_text(value: Any) -> Any:
    """A value as Asterisk's realtime drivers read it back: they split text at ';' into several
    values and decode ^XX as the character XX, so a literal ';' (a contact's `;transport=tls`,
    a password) or '^' is stored as its ^XX escape."""
    if isinstance(value, str):
        return value.replace("^", "^5E").replace(";", "^3B")
    return value


def from_realtime_text(value: str) -> str:
    return _REALTIME_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


_REALTIME_ESCAPE = re.compile(r"\^([0-9A-Fa-f]{2})")


class TrunkStore:
    def __init__(self, conn: psycopg.Connection[DictRow]) -> None:
        self._conn = conn

    def get(self, name: str) -> dict[str, Any]:
        row = self._conn.execute(
            """
            SELECT t.*, a.password IS NOT NULL AS has_password,
                (SELECT count(*) FROM calls c WHERE c.trunk = t.name
                   AND c.status IN ('initiated', 'ringing', 'in-progress')) AS live_calls,
                (SELECT count(*) FROM calls c WHERE c.trunk = t.name AND c.status = 'queued')
                   AS queued_calls
            FROM trunks t LEFT JOIN ps_auths a ON a.id = t.name WHERE t.name = %s
            """,
            (name,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no trunk named {name!r}", code="no-such-trunk")
        return row

    def list(self) -> list[dict[str, Any]]:
        return self._conn.execute(
            """
            SELECT t.*, (SELECT count(*) FROM call_attempts a
                         WHERE a.trunk = t.name AND a.ended_at IS NULL) AS live_calls
            FROM trunks t ORDER BY t.name
            """
        ).fetchall()

    def spec(self, name: str) -> TrunkSpec:
        """The stored trunk as a spec, password included, for updates."""
        row = self.get(name)
        auth = self._conn.execute("SELECT password FROM ps_auths WHERE id = %s", (name,)).fetchone()
        fields = {k: row[k] for k in TRUNK_SETTINGS if row[k] is not None}
        fields["codecs"] = row["codecs"]
        password = from_realtime_text(auth["password"]) if auth and auth["password"] is not None else None
        return TrunkSpec(name=name, password=password, **fields)

    def save(self, spec: TrunkSpec, *, create: bool) -> None:
        """Insert (create) or overwrite a trunk and its PJSIP rows in one transaction."""
        with self._conn.transaction():
            exists = self._conn.execute(
                "SELECT 1 FROM trunks WHERE name = %s FOR UPDATE", (spec.name,)
            ).fetchone()
            if create and exists:
                raise Conflict(f"a trunk named {spec.name!r} already exists", code="trunk-exists")
            if not create and not exists:
                raise NotFound(f"no trunk named {spec.name!r}", code="no-such-trunk")
            if spec.is_default:
                self._conn.execute(
                    "UPDATE trunks SET is_default = false WHERE is_default AND name <> %s", (spec.name,)
                )
            values = {
                "host": spec.host,
                "port": spec.port,
                "transport": spec.transport.value,
                "tls_verify": spec.tls_verify,
                "username": spec.username,
                "from_user": spec.from_user,
                "from_domain": spec.from_domain,
                "caller_id": spec.caller_id,
                "codecs": ",".join(spec.codecs),
                "max_channels": spec.max_channels,
                "cps": spec.cps,
                "is_default": spec.is_default,
            }
            if exists:
                assignments = sql.SQL(", ").join(
                    sql.SQL("{} = %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in values
                )
                self._conn.execute(
                    sql.SQL("UPDATE trunks SET {}, updated_at = now() WHERE name = %(name)s").format(
                        assignments
                    ),
                    {**values, "name": spec.name},
                )
            else:
                columns = ["name", *values]
                self._conn.execute(
                    sql.SQL("INSERT INTO trunks ({}) VALUES ({})").format(
                        sql.SQL(", ").join(map(sql.Identifier, columns)),
                        sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
                    ),
                    {**values, "name": spec.name},
                )
            self._write_pjsip(spec)

    def remove(self, name: str, *, force: bool) -> int:
        """Delete a trunk. Refuses while calls are live on it unless forced; forced, its queued
        calls are canceled (calls already dialing finish, and are not retried: with no trunk no
        claim would take them). Returns the number canceled."""
        with self._conn.transaction():
            row = self.get(name)
            busy = int(row["live_calls"]) + int(row["queued_calls"])
            if busy and not force:
                raise Conflict(
                    f"trunk {name!r} has {row['live_calls']} live and {row['queued_calls']} queued calls; "
                    "use --force to remove it anyway",
                    code="trunk-in-use",
                )
            canceled = self._conn.execute(
                """
                WITH canceled AS (
                    UPDATE calls SET status = 'canceled', status_reason = 'trunk removed',
                           ended_at = now(), updated_at = now()
                    WHERE trunk = %s AND status = 'queued' RETURNING id
                )
                INSERT INTO call_events (call_id, at, type, data)
                SELECT id, now(), 'status', '{"status": "canceled", "reason": "trunk removed"}'
                FROM canceled
                """,
                (name,),
            ).rowcount
            for table in PS_TABLES:
                self._conn.execute(
                    sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), (name,)
                )
            self._conn.execute("DELETE FROM trunks WHERE name = %s", (name,))
            return canceled

    def _write_pjsip(self, spec: TrunkSpec) -> None:
        rows = pjsip_rows(spec)
        for table in PS_TABLES:
            self._conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), (spec.name,)
            )
            row = rows.get(table)
            if row is None:
                continue
            row = {column: realtime_text(value) for column, value in row.items()}
            self._conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, row)),
                    sql.SQL(", ").join(sql.Placeholder(c) for c in row),
                ),
                row,
            )
