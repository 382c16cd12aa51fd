"""The farm at a glance, for /health and the metrics: dispatchers and nodes, counts and paces."""

from __future__ import annotations

from orchestrator.domain.health import HealthSnapshot, NodeAddress
from orchestrator.persistence.db import Pool


class FarmStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def health_snapshot(self, silent_after_s: float) -> HealthSnapshot:
        """Live dispatchers (heartbeat younger than `silent_after_s`) and the nodes to probe,
        on one connection."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM dispatchers "
                "WHERE heartbeat_at > now() - make_interval(secs => %s)",
                (silent_after_s,),
            )
            row = await cur.fetchone()
            cur = await conn.execute("SELECT name, ami_host, ami_port, drained FROM nodes ORDER BY name")
            nodes = tuple(
                NodeAddress(
                    name=str(r["name"]),
                    ami_host=str(r["ami_host"]),
                    ami_port=int(r["ami_port"]),
                    drained=bool(r["drained"]),
                )
                for r in await cur.fetchall()
            )
            return HealthSnapshot(dispatchers=int(row["n"]) if row else 0, nodes=nodes)
