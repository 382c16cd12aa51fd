"""The farm at a glance, for /health and the metrics: dispatchers and nodes, counts and paces."""

from __future__ import annotations

from orchestrator.domain.audio_retention import AudioUsage
from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import CampaignStatus
from orchestrator.domain.health import HealthSnapshot, NodeAddress
from orchestrator.persistence.audio import SIZE_SQL
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

    async def counts_by_status(self) -> dict[str, int]:
        """Every call by status, from the counts the triggers keep (schema.sql), not a count of
        the whole table."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, sum(n) AS n FROM call_status_counts GROUP BY status HAVING sum(n) <> 0"
            )
            return {str(r["status"]): int(r["n"]) for r in await cur.fetchall()}

    async def dialable_now(self) -> int:
        """Queued calls that may be dialed now: not held until a later time (not_before, a
        retry's backoff, a calling window) and not in a paused campaign. Only the queued part
        of the table is read (the dialable index is partial on it)."""
        async with self._pool.connection() as conn:
            # The API's connections plan each statement with its values (no prepared, generic
            # plan), so the partial index on queued calls still serves the status parameter.
            cur = await conn.execute(
                "SELECT count(*) AS n FROM calls c LEFT JOIN campaigns k ON k.id = c.campaign_id "
                "WHERE c.status = %s AND c.not_before <= now() "
                "AND (k.id IS NULL OR k.status = %s)",
                (CallStatus.QUEUED.value, CampaignStatus.ACTIVE.value),
            )
            row = await cur.fetchone()
            return int(row["n"]) if row else 0

    async def dial_pace(self) -> float:
        """Attempts started per second over the last minute."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM call_attempts WHERE started_at > now() - interval '60 seconds'"
            )
            row = await cur.fetchone()
            return int(row["n"]) / 60.0 if row else 0.0

    async def live_calls_per_node(self) -> dict[str, int]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT n.name, count(a.id) AS live FROM nodes n
                LEFT JOIN call_attempts a ON a.node = n.name AND a.ended_at IS NULL
                GROUP BY n.name ORDER BY n.name
                """
            )
            return {str(r["name"]): int(r["live"]) for r in await cur.fetchall()}

    async def node_paces(self) -> dict[str, float]:
        """Each node's current pace (new calls/s) as its dispatcher's AIMD last set it."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT name, pace_cps FROM nodes WHERE pace_cps IS NOT NULL")
            return {str(r["name"]): float(r["pace_cps"]) for r in await cur.fetchall()}

    async def audio_usage(self) -> AudioUsage:
        """Rendered audio on disk: the ready rows and their stored sizes (one pass over
        audio_assets, far smaller than calls: one row per distinct text)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT count(*) AS prompts, coalesce(sum({SIZE_SQL}), 0) AS bytes "
                "FROM audio_assets WHERE status = 'ready'"
            )
            row = await cur.fetchone()
            return AudioUsage(int(row["prompts"]), int(row["bytes"])) if row else AudioUsage(0, 0)
