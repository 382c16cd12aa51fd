"""The background cancel of canceled campaigns' queued calls, run by the dispatcher.

A campaign's cancel answers once the campaign row says canceled: from then on no claim starts
one of its calls (the claim reads the campaign under a share lock) and no attempt of it claimed
earlier is marked sent (persistence/dispatch/ownership.py). Its queued calls are then canceled
here, a batch per transaction, until the status counts show none left.

Why the dispatcher and not `sespcl db upkeep`: it is the process whose claims would otherwise
meet these calls, it already ends queued calls in bulk (expiry) with exactly the privileges
this needs, and it runs wherever calls are dialed; the upkeep is a single maintenance process,
as the schema's owner, that a deployment may leave out. Several dispatchers sweep side by side:
each batch skips the calls another one holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from uuid import UUID

import structlog

from orchestrator.domain.campaign import CancelPosition as Position

log = structlog.get_logger(__name__)


class CampaignCallCancelStore(Protocol):
    async def canceled_with_queued(self) -> list[UUID]: ...

    async def cancel_queued(
        self, campaign_id: UUID, after: Position | None, batch: int
    ) -> tuple[int, Position | None]: ...


class CampaignCancelSweep:
    """Each step: every canceled campaign with queued calls, one pass over its calls, `batch`
    calls a transaction, until the pass reaches its last call or the dispatcher stops."""

    def __init__(self, store: CampaignCallCancelStore, batch: int, stopped: Callable[[], bool]) -> None:
        self._store = store
        self._batch = batch
        self._stopped = stopped

    async def step(self) -> int:
        """Returns how many calls it canceled."""
        total = 0
        for campaign_id in await self._store.canceled_with_queued():
            if self._stopped():
                break
            total += await self._pass(campaign_id)
        return total

    async def _pass(self, campaign_id: UUID) -> int:
        bound = log.bind(campaign_id=str(campaign_id))
        canceled, batches = 0, 0
        after: Position | None = None
        while not self._stopped():
            done, after = await self._store.cancel_queued(campaign_id, after, self._batch)
            canceled += done
            batches += 1
            if after is None:
                break
        finished = after is None
        bound.info("dispatch.campaign_calls_canceled", count=canceled, batches=batches, finished=finished)
        return canceled
