"""Composition root: settings → adapters → services, for each process `sespcl` runs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import Histogram
from redis import Redis

from orchestrator.api.app import create_app
from orchestrator.api.deps import ApiDeps
from orchestrator.asterisk.ami import AmiNode
from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.probe import ami_banner, node_reachable
from orchestrator.audio_files import AudioDirectory
from orchestrator.config import Settings
from orchestrator.domain.destinations import DestinationPolicy
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.domain.pacing import PacerSettings
from orchestrator.domain.ports import DialNode, EventCallback, NodeConnector, StateCallback
from orchestrator.domain.records import NodeRow
from orchestrator.domain.render_planning import Lookahead
from orchestrator.domain.webhook_delivery import parse_secret
from orchestrator.domain.webhooks import AllowList
from orchestrator.loop import new_event_loop
from orchestrator.observability.backlog_metrics import BacklogGauges
from orchestrator.observability.dispatch_metrics import DispatcherGauges, PrometheusDispatchMeter
from orchestrator.observability.exporter import RENDER_BUCKETS, process_registry, serve_metrics
from orchestrator.observability.webhook_metrics import WebhookDeliveryCounts
from orchestrator.persistence.audio import AudioPruneStore
from orchestrator.persistence.backlog import BacklogStore
from orchestrator.persistence.calls import CallStore
from orchestrator.persistence.campaigns import CampaignStore
from orchestrator.persistence.db import Pool, open_pool
from orchestrator.persistence.dispatch import DispatchStore
from orchestrator.persistence.dispatch.cancels import CampaignCallCancels
from orchestrator.persistence.farm import FarmStore
from orchestrator.persistence.idempotency import IdempotencyKeyStore
from orchestrator.persistence.keys import KeyStore
from orchestrator.persistence.maintenance import TableUpkeepStore
from orchestrator.persistence.render_plan import RenderPlanStore
from orchestrator.persistence.webhooks import WebhookLogStore, WebhookOutbox
from orchestrator.queueing import WorkQueues
from orchestrator.rate_limit import RateLimiter
from orchestrator.rate_limit import connect as rate_limiter
from orchestrator.services.audio_retention import AudioPruner, ScheduledPrune
from orchestrator.services.calls import CallService
from orchestrator.services.campaigns import CampaignService
from orchestrator.services.dispatch import Dispatcher, DispatchSettings
from orchestrator.services.dispatch.settings import ORPHAN_AFTER_S
from orchestrator.services.health import HealthChecks
from orchestrator.services.idempotency import IdempotentRequests
from orchestrator.services.keys import Authenticator
from orchestrator.services.maintenance import TableKeeper
from orchestrator.services.metrics import FarmMetrics
from orchestrator.services.render_planner import RenderPlanner
from orchestrator.services.webhook_log import WebhookLog
from orchestrator.services.webhooks import SenderSettings, WebhookSender
from orchestrator.speech import available_voices
from orchestrator.supervision.heartbeat import beat_forever
from orchestrator.webhook_http import HttpPoster

log = structlog.get_logger(__name__)


def work_queues(settings: Settings) -> WorkQueues:
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    return WorkQueues(redis, render_queue=settings.queue_render, events_queue=settings.queue_events)


async def build_api(settings: Settings) -> web.Application:
    api_key = settings.api_key.get_secret_value()
    if len(api_key) < 16:
        raise SystemExit("SESPCL_API_KEY must be set (at least 16 characters) to serve the API")
    # The API reads whole rows (SELECT *); the dispatcher's hot statements name their columns
    # and keep their prepared plans.
    pool = await open_pool(settings.database_url, name="sespcl-api", max_size=10, prepare=False)
    # Uploads stream for a minute or more: they hold connections of their own, so that a few at
    # once never leave /v1/calls and /health waiting for the pool.
    upload_pool = await open_pool(
        settings.database_url, name="sespcl-api-upload", max_size=settings.max_uploads, prepare=False
    )
    limiter = rate_limiter(settings.redis_url, settings.rate_limit_timeout_s)
    app = create_app(api_deps(settings, api_key=api_key, pool=pool, upload_pool=upload_pool, limiter=limiter))

    async def close_pool(_: web.Application) -> None:
        await limiter.close()
        await upload_pool.close()
        await pool.close()

    app.on_cleanup.append(close_pool)
    return app


def api_deps(
    settings: Settings, *, api_key: str, pool: Pool, upload_pool: Pool, limiter: RateLimiter
) -> ApiDeps:
    """The API's services over its stores and queues."""
    calls = CallStore(pool)
    queues = work_queues(settings)
    farm = FarmStore(pool)
    engine, voice = settings.tts_engine, settings.tts_default_voice
    return ApiDeps(
        calls=CallService(
            repo=calls, renders=queues, engine=engine, default_voice=voice, voices=available_voices
        ),
        campaigns=CampaignService(
            store=CampaignStore(pool, upload_pool=upload_pool),
            trunks=calls,
            renders=queues,
            engine=engine,
            default_voice=voice,
            voices=available_voices,
        ),
        keys=Authenticator(
            keys=KeyStore(pool),
            bootstrap_key=api_key,
            bootstrap=Principal(
                name=BOOTSTRAP,
                scopes=frozenset({Scope.ADMIN}),
                rate_per_s=settings.api_key_rate_per_s or None,
                destinations=DestinationPolicy(premium=settings.api_key_allow_premium),
            ),
            cache_s=settings.key_cache_s,
        ),
        health=HealthChecks(store=farm, queues=queues, banner=ami_banner, cache_s=settings.health_cache_s),
        metrics=FarmMetrics(store=farm, queues=queues),
        webhooks=WebhookLog(WebhookLogStore(pool)),
        idempotency=IdempotentRequests(IdempotencyKeyStore(pool)),
        max_body_bytes=settings.max_body_bytes,
        max_bulk_bytes=settings.max_bulk_bytes,
        max_line_bytes=settings.max_line_bytes,
        upload_idle_s=settings.upload_idle_s,
        rate_limiter=limiter,
        webhook_allow=AllowList.parse(settings.webhook_allow_hosts),
    )


def serve(settings: Settings) -> None:
    web.run_app(
        build_api(settings),
        host=settings.api_host,
        port=settings.api_port,
        print=None,
        access_log=None,
        loop=new_event_loop(),
    )


def node_connector(owner: str) -> NodeConnector:
    """Dial each node with the driver its row names. ARI gives each dispatcher its own
    application: a second socket on the same app name takes the first one's events away."""
    app = "sespcl-" + re.sub(r"[^A-Za-z0-9_-]", "-", owner)

    def connect(row: NodeRow, on_event: EventCallback, on_state: StateCallback) -> DialNode:
        if row.driver == "ari":
            if row.ari_url is None or row.ari_secret is None:
                raise ValueError(f"node {row.name}: driver ari needs ari_url and ari_secret")
            return AriNode(
                row.name,
                url=row.ari_url,
                username=row.ari_user,
                password=row.ari_secret,
                on_event=on_event,
                on_state=on_state,
                app=app,
            )
        return AmiNode(
            row.name,
            host=row.ami_host,
            port=row.ami_port,
            username=row.ami_user,
            secret=row.ami_secret,
            on_event=on_event,
            on_state=on_state,
        )

    return connect


async def run_dispatcher(settings: Settings) -> None:
    pool = await open_pool(settings.database_url, name="sespcl-dispatcher", max_size=5)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    registry = process_registry()
    dispatcher = Dispatcher(
        DispatchStore(pool, owner=owner),
        node_connector(owner),
        work_queues(settings),
        DispatchSettings(
            poll_s=settings.dispatch_poll_s,
            batch=settings.dispatch_batch,
            cps=settings.dispatch_cps,
            max_call_s=settings.max_call_s,
            finalize_grace_s=settings.finalize_grace_s,
            originate_failure_wait_s=settings.originate_failure_wait_s,
            events_flush_s=settings.events_flush_s,
            events_batch_max=settings.events_batch_max,
            node_lost_after_s=settings.node_lost_after_s,
            pacer=PacerSettings(
                initial_rate=settings.node_pace_initial_cps,
                max_rate=settings.node_pace_max_cps,
                target_latency_s=settings.node_pace_target_ms / 1000,
            ),
        ),
        lambda row: node_reachable(row.ami_host, row.ami_port, row.ari_url),
        cancels=CampaignCallCancels(pool),
        meter=PrometheusDispatchMeter(registry),
    )
    registry.register(DispatcherGauges(dispatcher.node_views, dispatcher.recorder.depth))
    serve_metrics(registry, settings.metrics_host, settings.metrics_port, "dispatcher")
    log.info("dispatcher.start")
    try:
        await _run_beating(settings, dispatcher.run(), dispatcher.stop)
    finally:
        await pool.close()
        log.info("dispatcher.stopped")


def audio_pruner(settings: Settings, name: str) -> AudioPruner:
    """`sespcl audio prune`'s work, as the schema's owner (no service role deletes audio rows),
    in the audio directory the workers write to."""
    return AudioPruner(
        AudioPruneStore(settings.database_url, name),
        AudioDirectory(settings.audio_dir),
        batch=settings.audio_prune_batch,
    )


BACKLOG_READ_EVERY_S = 10.0


async def run_upkeep(settings: Settings) -> None:
    """Table upkeep where the server's autovacuum is off, the scheduled audio prune and the render
    planner. Its own
    process, as the schema's owner: PostgreSQL 15 lets only a table's owner VACUUM it, and the
    dispatcher's role owns nothing."""
    keeper = TableKeeper(TableUpkeepStore(settings.database_url, "sespcl-upkeep"), settings.db_upkeep_s)
    prune = ScheduledPrune(
        audio_pruner(settings, "sespcl-upkeep"),
        every_s=settings.audio_prune_every_s,
        keep_days=settings.audio_keep_days,
    )
    planner = RenderPlanner(
        RenderPlanStore(settings.database_url, "sespcl-render-planner"),
        work_queues(settings),
        every_s=settings.render_plan_every_s,
        lookahead=Lookahead(
            horizon_s=settings.render_lookahead_s, min_calls=settings.render_lookahead_min_calls
        ),
    )

    registry = process_registry()
    backlog = BacklogGauges(
        BacklogStore(settings.database_url, "sespcl-metrics", dispatcher_fresh_s=ORPHAN_AFTER_S),
        work_queues(settings).render_depth,
        every_s=BACKLOG_READ_EVERY_S,
    )
    registry.register(backlog)
    serve_metrics(registry, settings.metrics_host, settings.metrics_port, "upkeep")

    def stop() -> None:
        keeper.stop()
        prune.stop()
        planner.stop()
        backlog.stop()

    log.info(
        "upkeep.start",
        every_s=settings.db_upkeep_s,
        audio_prune_every_s=settings.audio_prune_every_s,
        audio_keep_days=settings.audio_keep_days,
    )
    await _run_beating(settings, _all(keeper.run(), prune.run(), planner.run(), backlog.run()), stop)
    log.info("upkeep.stopped")


async def _all(*loops: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(*loops)


async def run_webhooks(settings: Settings) -> None:
    """The webhook sender (`sespcl webhooks run`), as its own role: it reads and settles the
    outbox and nothing else."""
    key = webhook_key(settings)
    pool = await open_pool(settings.database_url, name="sespcl-webhooks", max_size=4)
    poster = HttpPoster(
        AllowList.parse(settings.webhook_allow_hosts), connections=settings.webhook_concurrency
    )
    await poster.open()
    sender = WebhookSender(
        WebhookOutbox(pool),
        poster,
        key,
        SenderSettings(
            concurrency=settings.webhook_concurrency,
            batch=settings.webhook_batch,
            poll_s=settings.webhook_poll_s,
        ),
    )
    registry = process_registry()
    registry.register(WebhookDeliveryCounts(lambda: sender.counts))
    serve_metrics(registry, settings.metrics_host, settings.metrics_port, "webhooks")
    log.info("webhooks.start", concurrency=settings.webhook_concurrency, allow=settings.webhook_allow_hosts)
    try:
        await _run_beating(settings, sender.run(), sender.stop)
    finally:
        await poster.close()
        await pool.close()
        log.info("webhooks.stopped")


def webhook_key(settings: Settings) -> bytes:
    """The HMAC key of SESPCL_WEBHOOK_SECRET; SystemExit naming the setting when it is unusable."""
    try:
        return parse_secret(settings.webhook_secret.get_secret_value())
    except ValueError as exc:
        raise SystemExit(f"SESPCL_WEBHOOK_SECRET {exc}") from exc


async def _run_beating(
    settings: Settings, work: Coroutine[Any, Any, None], stop_work: Callable[[], None]
) -> None:
    """`work` until SIGTERM or SIGINT (which call `stop_work`), beating the heartbeat file
    meanwhile when there is one."""
    stopping = asyncio.Event()

    def stop() -> None:
        stop_work()
        stopping.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    beats = (
        [beat_forever(settings.heartbeat_file, settings.heartbeat_s, stopping)]
        if settings.heartbeat_file is not None
        else []
    )
    await asyncio.gather(work, *beats)


HEARTBEAT_WORKER_TTL_S = 18
"""RQ waits for a job worker_ttl - 15 = 3 s at a time, and heartbeats between."""


def run_worker(settings: Settings, burst: bool = False) -> None:
    from rq import Queue

    from orchestrator.persistence.db import connect
    from orchestrator.queueing import HeartbeatWorker
    from workers import context

    registry = process_registry()
    render_seconds = Histogram(
        "sespcl_render_seconds",
        "One prompt's render, written to disk",
        buckets=RENDER_BUCKETS,
        registry=registry,
    )
    context.install(
        context.WorkerContext(
            settings=settings,
            db=connect(settings.database_url, "sespcl-worker"),
            observe_render=render_seconds.observe,
        )
    )
    serve_metrics(registry, settings.metrics_host, settings.metrics_port, "worker")
    queues = work_queues(settings)
    # Event batches first: RQ takes from the first queue that has work, and a campaign of many
    # distinct prompts must not hold the call log back (an event batch is a few milliseconds; a
    # render is a second). A short worker_ttl makes RQ wait for jobs in short stretches, with a
    # heartbeat between each (its wait is worker_ttl - 15 s), so an idle worker beats too.
    worker = HeartbeatWorker(
        [
            Queue(settings.queue_events, connection=queues.redis),
            Queue(settings.queue_render, connection=queues.redis),
        ],
        connection=queues.redis,
        worker_ttl=HEARTBEAT_WORKER_TTL_S,
    )
    worker.heartbeat_file = settings.heartbeat_file
    # While Redis is down RQ retries with a growing pause and no heartbeat in between: keep the
    # pause well under the watchdog's grace, so a worker waiting for Redis is not taken for stuck.
    worker.max_connection_wait_time = min(5, int(settings.liveness_fail_after_s / 3))
    worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
