"""`DispatchStore`, the dispatcher's repository: where its connections come from. What each
method says on its connection is in the module of its concern."""

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
from orchestrator.persistence.events import record_events_async


class DispatchStore:
    """Everything one dispatcher instance (`owner`) reads and writes."""

    def __init__(self, pool: Pool, owner: str) -> None:
        self._pool = pool
        self.owner = owner

    # ---- claims and transitions ---------------------------------------------------------------

    async def claim(self, node_plan: list[str]) -> list[Claim]:
        if not node_plan:
            return []
        async with self._pool.connection() as conn:
            return await claims.claim(conn, self.owner, node_plan)

    async def apply(self, transitions_: list[Transition]) -> list[StoredStatus | None]:
        if not transitions_:
            return []
        async with self._pool.connection() as conn:
            return await transitions.apply(conn, self.owner, transitions_)

    # ---- ownership ----------------------------------------------------------------------------

    async def heartbeat(self, host: str, pid: int) -> None:
        async with self._pool.connection() as conn:
            await ownership.heartbeat(conn, self.owner, host, pid)

    async def dispatchers_on(self, host: str) -> list[tuple[str, int]]:
        async with self._pool.connection() as conn:
            return await ownership.dispatchers_on(conn, self.owner, host)

    async def retire(self) -> None:
        async with self._pool.connection() as conn:
            await ownership.retire(conn, self.owner)

    async def adopt_orphans(
        self, stale_after_s: float, dead_here: list[str] | None = None
    ) -> list[AdoptedAttempt]:
        async with self._pool.connection() as conn:
            return await ownership.adopt_orphans(conn, self.owner, stale_after_s, dead_here)

    async def mark_sending(self, attempt_ids: list[UUID]) -> Marked:
        async with self._pool.connection() as conn:
            return await ownership.mark_sending(conn, self.owner, attempt_ids)

    async def requeue_unsent(self, attempt_ids: list[UUID], why: Unsent) -> list[Requeued]:
        if not attempt_ids:
            return []
        async with self._pool.connection() as conn:
            return await ownership.requeue_unsent(conn, self.owner, attempt_ids, why)

    async def requeue_stray(self, older_than_s: float) -> list[Requeued]:
        async with self._pool.connection() as conn:
            return await ownership.requeue_stray(conn, self.owner, older_than_s)

    # ---- nodes --------------------------------------------------------------------------------

    async def nodes(self) -> list[NodeRow]:
        async with self._pool.connection() as conn:
            return await nodes.nodes(conn)

    async def mark_node(
        self, name: str, *, up: bool, version: str | None = None, pace_cps: float | None = None
    ) -> None:
        async with self._pool.connection() as conn:
            await nodes.mark_node(conn, name, up=up, version=version, pace_cps=pace_cps)

    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]:
        if not attempt_ids:
            return {}
        async with self._pool.connection() as conn:
            return await nodes.cdr_dispositions(conn, attempt_ids)

    # ---- sweeps and events --------------------------------------------------------------------

    async def expire_due(self) -> int:
        async with self._pool.connection() as conn:
            return await sweeps.expire_due(conn)

    async def cancel_requests(self) -> list[UUID]:
        async with self._pool.connection() as conn:
            return await sweeps.cancel_requests(conn)

    async def stale_renders(self, older_than_s: float) -> list[str]:
        async with self._pool.connection() as conn:
            return await sweeps.stale_renders(conn, older_than_s)

    async def fold_status_counts(self) -> int:
        async with self._pool.connection() as conn:
            return await sweeps.fold_status_counts(conn)

    async def record_events(self, batch: list[CallEvent]) -> int:
        """Stores a batch of events here, as the event worker would (when Redis is down)."""
        async with self._pool.connection() as conn:
            return await record_events_async(conn, batch)
