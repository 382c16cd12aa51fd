"""The nodes table as NodeRows: one query, read by the CLI (synchronously) and the dispatcher."""

from __future__ import annotations

import psycopg
from psycopg.rows import DictRow

from orchestrator.domain.records import NodeRow

NODES_SQL = (
    "SELECT name, ami_host, ami_port, ami_user, ami_secret, max_channels, drained, ari_url, "
    "driver, ari_user, ari_secret "
    "FROM nodes ORDER BY name"
)


def node_rows(conn: psycopg.Connection[DictRow]) -> list[NodeRow]:
    return [NodeRow(**row) for row in conn.execute(NODES_SQL).fetchall()]
