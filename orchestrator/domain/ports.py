"""What the services need from the outside world, as Protocols; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Protocol
from uuid import UUID

from orchestrator.domain.dialing import OriginateOutcome, OriginateRequest
from orchestrator.domain.events import ChannelEvent
from orchestrator.domain.facts import Change
from orchestrator.domain.records import (
    AdoptedAttempt,
    CallEvent,
    Claim,
    Marked,
    NodeRow,
    Requeued,
    StoredStatus,
)

EventCallback = Callable[[str, ChannelEvent], None]
"""(node name, one of its channels' events)"""
StateCallback = Callable[[str, bool], None]
"""(node name, up)"""


class Unsent(Enum):
    """Why attempts known never dialed go back to the queue: the store words it in the call's
    history."""

    NOT_SENT = "not sent"
    """Claimed, never sent: a mark that failed, a stop, a node not connected, an adoption."""
    REFUSED = "refused"
    """The node made no channel for it: nothing was dialed."""


class DialNode(Protocol):
    name: str
    version: str | None
    boot_id: str | None
    """When the node's Asterisk process started, as the node reports it: another value after a
    reconnection means the node restarted, and every call it carried went with it."""
    driver: str
    """'ami' or 'ari': names the events recorded from this node (`ami.*`, `ari.*`)."""

    @property
    def up(self) -> bool: ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome: ...

    async def hangup(self, channel: str, cause: int = 16) -> None: ...

    async def ping(self, timeout: float = 2.0) -> bool: ...

    async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]: ...


NodeConnector = Callable[[NodeRow, EventCallback, StateCallback], DialNode]


class DispatchRepository(Protocol):
    async def nodes(self) -> list[NodeRow]: ...

    async def mark_node(
        self, name: str, *, up: bool, version: str | None = None, pace_cps: float | None = None
    ) -> None: ...

    async def claim(self, node_plan: list[str]) -> list[Claim]: ...

    async def mark_sending(self, attempt_ids: list[UUID]) -> Marked: ...

    async def requeue_unsent(self, attempt_ids: list[UUID], why: Unsent) -> list[Requeued]: ...

    async def requeue_stray(self, older_than_s: float) -> list[Requeued]: ...

    async def apply(self, transitions: Sequence[Change]) -> list[StoredStatus | None]: ...

    async def heartbeat(self, host: str, pid: int) -> None: ...

    async def retire(self) -> None: ...

    async def adopt_orphans(
        self, stale_after_s: float, dead_here: list[str] | None = None
    ) -> list[AdoptedAttempt]: ...

    async def dispatchers_on(self, host: str) -> list[tuple[str, int]]: ...

    async def cancel_requests(self) -> list[UUID]: ...

    async def stale_renders(self, older_than_s: float) -> list[str]: ...

    async def expire_due(self) -> int: ...

    async def fold_status_counts(self) -> int: ...

    async def record_events(self, batch: list[CallEvent]) -> int: ...

    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]: ...


class EventSink(Protocol):
    def enqueue_events(self, batch: list[CallEvent]) -> str: ...

    def batch_state(self, job_id: str) -> str: ...

    def requeue_lost_renders(self, audio_hashes: list[str]) -> int: ...
