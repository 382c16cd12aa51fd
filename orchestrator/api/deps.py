"""What the handlers reach through the application: services and limits (never a store)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from orchestrator.domain.webhooks import AllowList
from orchestrator.rate_limit import RateLimiter
from orchestrator.services.calls import CallService
from orchestrator.services.campaigns import CampaignService
from orchestrator.services.health import HealthChecks
from orchestrator.services.idempotency import IdempotentRequests
from orchestrator.services.keys import Authenticator
from orchestrator.services.metrics import FarmMetrics
from orchestrator.services.webhook_log import WebhookLog


@dataclass
class ApiDeps:
    calls: CallService
    keys: Authenticator
    health: HealthChecks
    metrics: FarmMetrics
    max_body_bytes: int
    campaigns: CampaignService
    max_bulk_bytes: int
    max_line_bytes: int
    upload_idle_s: float
    webhooks: WebhookLog
    idempotency: IdempotentRequests
    """Idempotency-Key on the bulk paths (single calls keep theirs with the call)."""
    rate_limiter: RateLimiter | None = None
    """None: no key is rate limited (tests of handlers alone)."""
    webhook_allow: AllowList = AllowList()
    """SESPCL_WEBHOOK_ALLOW_HOSTS: private hosts a status callback may name (default: none)."""


DEPS = web.AppKey("deps", ApiDeps)
