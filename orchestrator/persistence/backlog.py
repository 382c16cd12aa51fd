"""Where the farm's work waits, read for the metrics: queued calls by why they wait, live
dispatchers, and how late the oldest due webhook is. Read by upkeep (the owner's role)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import psycopg
from psycopg.rows import DictRow

from orchestrator.persistence.db import own_connection
from orchestrator.persistence.errors import raises_port_errors

WAITING_STATES = ("dialable", "waiting_render", "scheduled", "held")


@dataclass(frozen=True)
class Backlog:
    queued_by_state: dict[str, int]
    dispatchers_live: int
    webhook_lag_s: float
    """Seconds since the oldest pending delivery fell due (0: none is due)."""


# A queued call waits for one thing at a time, tested in this order: its campaign (paused, or
# canceled and not yet swept), its time (not_before: a later send, a retry's backoff, a calling
# window), its audio (any piece not rendered yet); otherwise the claim may take it now.
_QUEUED_SQL = """
    SELECT CASE
             WHEN k.status IS NOT NULL AND k.status <> 'active' THEN 'held'
             WHEN c.not_before > now() THEN 'scheduled'
             WHEN EXISTS (SELECT 1 FROM audio_assets a
                          WHERE a.hash = ANY (coalesce(c.segments, ARRAY[c.audio_hash]))
                            AND a.status <> 'ready') THEN 'waiting_render'
             ELSE 'dialable'
           END AS state,
           count(*) AS n
    FROM calls c LEFT JOIN campaigns k ON k.id = c.campaign_id
    WHERE c.status = 'queued'
    GROUP BY 1
"""

_DISPATCHERS_SQL = """
    SELECT count(*) AS n FROM dispatchers WHERE heartbeat_at > now() - make_interval(secs => %(fresh_s)s)
"""

_WEBHOOK_LAG_SQL = """
    SELECT coalesce(extract(epoch FROM now() - min(next_try_at)), 0)::float8 AS lag_s
    FROM webhook_deliveries WHERE status = 'pending' AND next_try_at <= now()
"""


class BacklogStore:
    def __init__(self, url: str, name: str, *, dispatcher_fresh_s: float) -> None:
        self._url = url
        self._name = name
        self._fresh_s = dispatcher_fresh_s

    def _connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[DictRow]]:
        return own_connection(self._url, self._name, autocommit=True)

    @raises_port_errors
    async def read(self) -> Backlog:
        async with self._connection() as conn:
            cur = await conn.execute(_QUEUED_SQL)
            by_state = dict.fromkeys(WAITING_STATES, 0)
            by_state.update({str(r["state"]): int(r["n"]) for r in await cur.fetchall()})
            cur = await conn.execute(_DISPATCHERS_SQL, {"fresh_s": self._fresh_s})
            dispatchers = await cur.fetchone()
            cur = await conn.execute(_WEBHOOK_LAG_SQL)
            lag = await cur.fetchone()
        return Backlog(
            by_state,
            int(dispatchers["n"]) if dispatchers else 0,
            float(lag["lag_s"]) if lag else 0.0,
        )
