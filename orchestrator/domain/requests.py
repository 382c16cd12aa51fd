"""What a client asks for, checked at the edge, before the services fill in what it left open
(a trunk, a voice, the callee's zones). Built by keyword: every field but the essentials has
the meaning of "not given"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.domain.calling_hours import CallingWindow
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.interaction import AmdTuning, Gather, MachineDetection
from orchestrator.domain.retry import RetryPolicy
from orchestrator.domain.segments import TtsMode
from orchestrator.domain.webhooks import StatusCallback


@dataclass(frozen=True, kw_only=True)
class SpeechAsk:
    """Words a two-way call may say besides its prompt, before they are rendered."""

    text: str
    voice: str | None = None
    """None: the call's own voice."""


@dataclass(frozen=True, kw_only=True)
class ReplyAsk:
    """What a digit (or digits) pressed is answered with."""

    speech: SpeechAsk | None = None
    dnc: bool = False


@dataclass(frozen=True, kw_only=True)
class InteractionRequest:
    """What a two-way call asks (domain/interaction.py's `Interaction`), its words not yet
    rendered; checked at the edge, rendered by the services."""

    gather: Gather | None = None
    on_digits: Mapping[str, ReplyAsk] = field(default_factory=dict)
    machine_detection: MachineDetection | None = None
    amd: AmdTuning | None = None
    voicemail: SpeechAsk | None = None
    dialplan_context: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallRequest:
    """One call (POST /v1/calls)."""

    to: str
    text: str
    ring_timeout_s: int
    from_: str | None = None
    trunk: str | None = None
    """None: the default trunk."""
    voice: str | None = None
    """None: the default voice."""
    metadata: dict[str, Any] | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    window: CallingWindow | None = None
    tz: str | None = None
    """The callee's IANA zone, for the window; None: the number's own zones."""
    retry: RetryPolicy | None = None
    created_by: str | None = None
    """The name of the asking key."""
    destinations: DestinationPolicy | None = None
    """Where the asking key may call; None: anywhere."""
    idempotency_key: str | None = None
    request_hash: str | None = None
    """Identifies the request's content: a replayed key with another content is refused."""
    interaction: InteractionRequest = field(default_factory=InteractionRequest)
    status_callback: StatusCallback | None = None


@dataclass(frozen=True, kw_only=True)
class CampaignRequest:
    """A campaign and the defaults of its calls (POST /v1/campaigns, /voice/bulk)."""

    name: str
    text: str
    """The message template: it may hold {{variable}} placeholders."""
    ring_timeout_s: int
    trunk: str | None = None
    from_: str | None = None
    voice: str | None = None
    cps: float | None = None
    """The campaign's own cap on new calls a second; None: no cap of its own."""
    window: CallingWindow | None = None
    expires_at: datetime | None = None
    retry: RetryPolicy | None = None
    created_by: str | None = None
    interaction: InteractionRequest = field(default_factory=InteractionRequest)
    """The two-way defaults of its calls; a bulk row may replace any of its fields."""
    status_callback: StatusCallback | None = None
    tts_mode: TtsMode = TtsMode.SEGMENTS
    """How its calls' messages are rendered: in pieces played in order, or whole."""
