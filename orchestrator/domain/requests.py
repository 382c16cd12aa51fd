"""What a client asks for, checked at the edge, before the services fill in what it left open
(a trunk, a voice, the callee's zones). Built by keyword: every field but the essentials has
the meaning of "not given"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.domain.calling_hours import CallingWindow
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.retry import RetryPolicy


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
