"""What the handlers reach through the application: services, stores, limits."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from orchestrator.persistence.calls import CallStore
from orchestrator.persistence.campaigns import CampaignStore
from orchestrator.queueing import WorkQueues
from orchestrator.services.calls import CallService
from orchestrator.services.campaigns import CampaignService


@dataclass
class ApiDeps:
    calls: CallService
    store: CallStore
    queues: WorkQueues
    api_key: str
    max_body_bytes: int
    campaigns: CampaignService
    campaign_store: CampaignStore
    max_bulk_bytes: int
    max_line_bytes: int
    upload_idle_s: float


DEPS = web.AppKey("deps", ApiDeps)
