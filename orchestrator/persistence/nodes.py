"""Nodes as the CLI reads them (synchronously)."""

from __future__ import annotations

import psycopg
from psycopg.rows import DictRow

from orchestrator.domain.records import NodeRow


def node_rows(conn: psycopg.Connection[DictRow]) -> list[NodeRow]:
    rows = conn.execute(
        "SELECT name, ami_host, ami_port, ami_user, ami_secret, max_channels, drained, ari_url, "
        "driver, ari_user, ari_secret "
        "FROM nodes ORDER BY name"
    ).fetchall()
    return [NodeRow(**row) for row in rows]
