"""What the dispatcher reads and writes of its nodes: their rows, their state and pace, and the
nodes' own CDRs."""

from __future__ import annotations

from orchestrator.domain.records import NodeRow
from orchestrator.persistence.db import Connection
from orchestrator.persistence.nodes import NODES_SQL


async def nodes(conn: Connection) -> list[NodeRow]:
    cur = await conn.execute(NODES_SQL)
    return [NodeRow(**row) for row in await cur.fetchall()]


async def mark_node(
    conn: Connection, name: str, *, up: bool, version: str | None, pace_cps: float | None
) -> None:
    await conn.execute(
        """
        UPDATE nodes SET state = %s, version = coalesce(%s, version),
               pace_cps = coalesce(%s, pace_cps),
               last_seen_at = CASE WHEN %s THEN now() ELSE last_seen_at END
        WHERE name = %s
        """,
        ("up" if up else "down", version, pace_cps, up, name),
    )


async def cdr_dispositions(conn: Connection, attempt_ids: list[str]) -> dict[str, str]:
    """The nodes' own record of how these channels ended (cdr, by uniqueid = attempt id).
    A channel may leave more than one CDR; an answer anywhere wins."""
    cur = await conn.execute(
        "SELECT uniqueid, disposition FROM cdr WHERE uniqueid = ANY(%s) "
        "ORDER BY (disposition = 'ANSWERED') DESC",
        (attempt_ids,),
    )
    found: dict[str, str] = {}
    for row in await cur.fetchall():
        found.setdefault(str(row["uniqueid"]), str(row["disposition"]))
    return found
