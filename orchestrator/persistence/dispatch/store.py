"""`DispatchStore`, the dispatcher's repository: where its connections come from, and where the
database's failures become port errors (every method raises StoreError for them, never
psycopg's own). What each method says on its connection is in the module of its concern."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar
from uuid import UUID

from orchestrator.domain.facts import Change
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
from orchestrator.persistence.db import Connection, Pool
from orchestrator.persistence.dispatch import claims, nodes, ownership, sweeps, transitions
from orchestrator.persistence.errors import raises_port_errors
from orchestrator.persistence.events import record_events_async

P = ParamSpec("P")
T = TypeVar("T")


class DispatchStore:
    """Everything one dispatcher instance (`owner`) reads and writes."""

    def __init__(self, pool: Pool, owner: str) -> None:
        self._pool = pool
        self.owner = owner

    async def _on_conn(
        self, step: Callable[Concatenate[Connection, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`step` on a pooled connection, committed once it returns (rolled back if it raises)."""
        async with self._pool.connection() as conn:
            return await step(conn, *args, **kwargs)

    # ---- claims and transitions ---------------------------------------------------------------

    @raises_port_errors
    async def claim(self, node_plan: list[str]) -> list[Claim]:
        if not node_plan:
            return []
        return await self._on_conn(claims.claim, self.owner, node_plan)

    @raises_port_errors
    async def apply(self, transitions_: Sequence[Change]) -> list[StoredStatus | None]:
        if not transitions_:
            return []
        return await self._on_conn(transitions.apply, self.owner, transitions_)

    # ---- ownership ----------------------------------------------------------------------------

    @raises_port_errors
    async def heartbeat(self, host: str, pid: int) -> None:
        await self._on_conn(ownership.heartbeat, self.owner, host, pid)

    @raises_port_errors
    async def dispatchers_on(self, host: str) -> list[tuple[str, int]]:
        return await self._on_conn(ownership.dispatchers_on, self.owner, host)

    @raises_port_errors
    async def retire(self) -> None:
        await self._on_conn(ownership.retire, self.owner)

    @raises_port_errors
    async def adopt_orphans(
        self, stale_after_s: float, dead_here: list[str] | None = None
    ) -> list[AdoptedAttempt]:
        return await self._on_conn(ownership.adopt_orphans, self.owner, stale_after_s, dead_here)

    @raises_port_errors
    async def mark_sending(self, attempt_ids: list[UUID]) -> Marked:
        return await self._on_conn(ownership.mark_sending, self.owner, attempt_ids)

    @raises_port_errors
    async def requeue_unsent(self, attempt_ids: list[UUID], why: Unsent) -> list[Requeued]:
        if not attempt_ids:
            return []
        return await self._on_conn(ownership.requeue_unsent, self.owner, attempt_ids, why)

    @raises_port_errors
    async def requeue_stray(self, older_than_s: float) -> list[Requeued]:
        return await self._on_conn(ownership.requeue_stray, self.owner, older_than_s)

    # ---- nodes --------------------------------------------------------------------------------

    @raises_port_errors
    async def nodes(self) -> list[NodeRow]:
        return await self._on_conn(nodes.nodes)

    @raises_port_errors
    async def mark_node(
        self, name: str, *, up: bool, version: str | None = None, pace_cps: float | None = None
    ) -> None:
        await self._on_conn(nodes.mark_node, name, up=up, version=version, pace_cps=pace_cps)

    @raises_port_errors
    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]:
        if not attempt_ids:
            return {}
        return await self._on_conn(nodes.cdr_dispositions, attempt_ids)

    # ---- sweeps and events --------------------------------------------------------------------

    @raises_port_errors
    async def expire_due(self) -> int:
        return await self._on_conn(sweeps.expire_due)

    @raises_port_errors
    async def cancel_requests(self) -> list[UUID]:
        return await self._on_conn(sweeps.cancel_requests)

    @raises_port_errors
    async def stale_renders(self, older_than_s: float) -> list[str]:
        return await self._on_conn(sweeps.stale_renders, older_than_s)

    @raises_port_errors
    async def fold_status_counts(self) -> int:
        return await self._on_conn(sweeps.fold_status_counts)

    @raises_port_errors
    async def record_events(self, batch: list[CallEvent]) -> int:
        """Stores a batch of events here, as the event worker would (when Redis is down)."""
        return await self._on_conn(record_events_async, batch)
