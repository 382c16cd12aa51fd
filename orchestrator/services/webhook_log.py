"""Use case behind GET /v1/calls/{id}/webhooks: a call's status-callback deliveries and tries."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from orchestrator.domain.errors import NotFound


class WebhookLogRepository(Protocol):
    async def call_exists(self, call_id: UUID) -> bool: ...

    async def deliveries(self, call_id: UUID) -> list[dict[str, Any]]: ...


class WebhookLog:
    def __init__(self, repo: WebhookLogRepository) -> None:
        self._repo = repo

    async def deliveries(self, call_id: UUID) -> list[dict[str, Any]]:
        """The call's events in order, each with its tries; NotFound for an unknown call."""
        deliveries = await self._repo.deliveries(call_id)
        if not deliveries and not await self._repo.call_exists(call_id):
            raise NotFound(f"no call {call_id}", code="no-such-call")
        return deliveries
