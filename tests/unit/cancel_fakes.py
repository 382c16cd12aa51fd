"""A fake of the background cancel's store: canceled campaigns' queued calls, in memory."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from orchestrator.domain.campaign import CancelPosition


class FakeCampaignCancels:
    """`queued`: each canceled campaign's queued calls, in the order a pass walks them; `locked`:
    calls a claim holds (a batch skips them). What each batch asked is kept in `batches`."""

    def __init__(self, queued: dict[uuid.UUID, int] | None = None) -> None:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        self.queued: dict[uuid.UUID, list[CancelPosition]] = {
            campaign: [(start + timedelta(seconds=i), uuid.uuid4()) for i in range(n)]
            for campaign, n in (queued or {}).items()
        }
        self.locked: set[uuid.UUID] = set()
        self.canceled: list[uuid.UUID] = []
        self.batches: list[tuple[uuid.UUID, CancelPosition | None]] = []

    async def canceled_with_queued(self) -> list[uuid.UUID]:
        return sorted(campaign for campaign, calls in self.queued.items() if calls)

    async def cancel_queued(
        self, campaign_id: uuid.UUID, after: CancelPosition | None, batch: int
    ) -> tuple[int, CancelPosition | None]:
        self.batches.append((campaign_id, after))
        calls = self.queued[campaign_id]
        taken = [c for c in calls if (after is None or c > after) and c[1] not in self.locked][:batch]
        for call in taken:
            calls.remove(call)
            self.canceled.append(call[1])
        return len(taken), (taken[-1] if taken else None)


class NoCanceledCampaigns(FakeCampaignCancels):
    """No canceled campaign has a queued call: the sweep finds nothing to do."""
