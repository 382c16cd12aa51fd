"""`DispatchStore`, the dispatcher's repository: where its connections come from, and where the
database's failures become port errors (every method raises StoreError for them, never
psycopg's own). What each method says on its connection is in the module of its concern."""

from __future__ import annotations

from uuid import UUID

from orchestrator.domain.attempt import Transition
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import (
    AdoptedAttempt,
    CallEvent,
    Claim,
    Marked,
    NodeRow,
    Requeued,
    StoredStatus,
)
from orchestrator.persistence.db import Pool
from orchestrator.persistence.dispatch import claims, nodes, ownership, sweeps, transitions
from orchestrator.persistence.errors import raises_port_errors
from orchestrator.persistence.events import record_events_async


class DispatchStore:
    """Everything one dispatcher instance (`owner`) reads and writes."""

    def __init__(self, pool: Pool, owner: str) -> None:
        self._pool = pool
        self.owner = owner

    # ---- claims and transitions ---------------------------------------------------------------

    @raises_port_errors
    async def claim(self, node_plan: list[str]) -> list[Claim]:
        if not node_plan:
            return []
        async with self._pool.connection() as conn:
            return await claims.claim(conn, self.owner, node_plan)

    @raises_port_errors
    async def apply(self, transitions_: list[Transition]) -> list[StoredStatus | None]:
        if not transitions_:
            return []
        async with self._pool.connection() as conn:
            return await transitions.apply(conn, self.owner, transitions_)

    # ---- ownership ----------------------------------------------------------------------------

    @raises_port_errors
    async def heartbeat(self, host: str, pid: int) -> None:
        async with self._pool.connection() as conn:
            await ownership.heartbeat(conn, self.owner, host, pid)

    @raises_port_errors
    async def dispatchers_on(self, host: str) -> list[tuple[str, int]]:
        async with self._pool.connection() as conn:
            return await ownership.dispatchers_on(conn, self.owner, host)

    @raises_port_errors
    async def retire(self) -> None:
        async with self._pool.connection() as conn:
            await ownership.retire(conn, self.owner)

    @raises_port_errors
    async def adopt_orphans(
        self, stale_after_s: float, dead_here: list[str] | None = None
    ) -> list[AdoptedAttempt]:
        async with self._pool.connection() as conn:
            return await ownership.adopt_orphans(conn, self.owner, stale_after_s, dead_here)

    @raises_port_errors
    async def mark_sending(self, attempt_ids: list[UUID]) -> Marked:
        async with self._pool.connection() as conn:
            return await ownership.mark_sending(conn, self.owner, attempt_ids)

    @raises_port_errors
    async def requeue_unsent(self, attempt_ids: list[UUID], why: Unsent) -> list[Requeued]:
        if not attempt_ids:
            return []
        async with self._pool.connection() as conn:
            return await ownership.requeue_unsent(conn, self.owner, attempt_ids, why)

    @raises_port_errors
    async def requeue_stray(self, older_than_s: float) -> list[Requeued]:
        async with self._pool.connection() as conn:
            return await ownership.requeue_stray(conn, self.owner, older_than_s)

    # ---- nodes --------------------------------------------------------------------------------

    @raises_port_errors
    async def nodes(self) -> list[NodeRow]:
        async with self._pool.connection() as conn:
            return await nodes.nodes(conn)

    @raises_port_errors
    async def mark_node(
        self, name: str, *, up: bool, version: str | None = None, pace_cps: float | None = None
    ) -> None:
        async with self._pool.connection() as conn:
            await nodes.mark_node(conn, name, up=up, version=version, pace_cps=pace_cps)

    @raises_port_errors
    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]:
        if not attempt_ids:
            return {}
        async with self._pool.connection() as conn:
            return await nodes.cdr_dispositions(conn, attempt_ids)

    # ---- sweeps and events --------------------------------------------------------------------

    @raises_port_errors
    async def expire_due(self) -> int:
        async with self._pool.connection() as conn:
            return await sweeps.expire_due(conn)

    @raises_port_errors
    async def cancel_requests(self) -> list[UUID]:
        async with self._pool.connection() as conn:
            return await sweeps.cancel_requests(conn)

    @raises_port_errors
    async def stale_renders(self, older_than_s: float) -> list[str]:
        async with self._pool.connection() as conn:
            return await sweeps.stale_renders(conn, older_than_s)

    @raises_port_errors
    async def fold_status_counts(self) -> int:
        async with self._pool.connection() as conn:
            return await sweeps.fold_status_counts(conn)

    @raises_port_errors
    async def record_events(self, batch: list[CallEvent]) -> int:
        """Stores a batch of events here, as the event worker would (when Redis is down)."""
        async with self._pool.connection() as conn:
            return await record_events_async(conn, batch)
