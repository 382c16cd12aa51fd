"""Plain records that cross between storage and the services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID

from orchestrator.domain.call import CallStatus
from orchestrator.domain.interaction import Interaction
from orchestrator.domain.retry import RetryPolicy


@dataclass(frozen=True)
class Claim:
    """A call taken off the queue for one attempt on one node."""

    call_id: UUID
    attempt_id: UUID
    attempt_number: int
    node: str
    to: str
    from_: str | None
    trunk: str
    audio_path: str
    ring_timeout_s: int
    claimed_at: datetime
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    interaction: Interaction = field(default_factory=Interaction)
    extra_audio_paths: Mapping[str, str] = field(default_factory=dict)
    """The paths of `interaction`'s audio (replies, voicemail message) by hash."""
    campaign_id: UUID | None = None

    def channel_variables(self) -> dict[str, str]:
        """What the node's dialplan needs of the call's interaction."""
        return self.interaction.channel_variables(self.extra_audio_paths.__getitem__)


@dataclass(frozen=True)
class Requeued:
    """A call put back in the queue, its attempt (known never dialed) removed and not counted:
    `status` is `queued`, or `canceled` when a cancel came (or its trunk went) meanwhile."""

    call_id: UUID
    attempt_id: UUID
    status: CallStatus


@dataclass(frozen=True)
class Marked:
    """A group of claims just before their Originates: those to dial now (`sent`), and those
    put back in the queue instead, nothing dialed, because their node was drained since the
    claim. Any other was adopted by another dispatcher."""

    sent: frozenset[UUID]
    requeued: tuple[Requeued, ...] = ()


@dataclass(frozen=True)
class AdoptedAttempt:
    """A live attempt taken over from a dispatcher that stopped, as the store last had it."""

    attempt_id: UUID
    call_id: UUID
    node: str
    status: CallStatus
    channel: str | None
    started_at: datetime
    number: int
    originate_sent: bool
    """False: claimed but never sent, so never dialed: it goes back to the queue."""
    answered: bool
    cancel_requested: bool
    ring_timeout_s: int
    trunk: str
    retry: RetryPolicy
    campaign_id: UUID | None = None


class CallEvent(TypedDict):
    """One event of a call's story, as a batch carries it to `call_events`. A plain dict at run
    time: batches are pickled to the event worker."""

    uid: str
    """Minted by the recorder: a second recording of the event is a no-op."""
    call_id: UUID
    attempt_id: UUID | None
    at: datetime
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class NodeRow:
    name: str
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    max_channels: int
    drained: bool
    ari_url: str | None = None
    driver: str = "ami"
    """'ami' or 'ari': how the dispatcher dials and follows calls on this node."""
    ari_user: str = "sespcl"
    ari_secret: str | None = None

    @property
    def connection(self) -> tuple[object, ...]:
        """What a live connection to the node depends on: a change means reconnecting."""
        if self.driver == "ari":
            return (self.driver, self.ari_url, self.ari_user, self.ari_secret)
        return (self.driver, self.ami_host, self.ami_port, self.ami_user, self.ami_secret)


@dataclass(frozen=True)
class StoredStatus:
    """What a stored transition did to its call's row: the status it now has, and why. A retry
    normally leaves the call `queued`; if its cancel was asked for meanwhile, `canceled`."""

    status: CallStatus
    reason: str | None = None
