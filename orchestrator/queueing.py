"""RQ on Redis: the work carried to workers (speech renders, batches of call events).

Redis only carries work; PostgreSQL stays the record of what must happen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker_registration import register

from orchestrator.domain.errors import QueueUnavailable
from orchestrator.domain.records import CallEvent
from orchestrator.supervision.heartbeat import beat

RENDER_JOB = "workers.tts.render_audio"
RENDER_BATCH_JOB = "workers.tts.render_audio_batch"
RENDER_BATCH_MAX = 1000
"""Most assets one batch job renders: a few seconds of a worker's time at most, so a batch stays
well inside ABANDONED_AFTER_S and one worker does not hold a campaign's prompts alone."""
RENDER_REQUEUE_BATCH = 200
"""Renders found lost are enqueued again in batches of this many (spread over the workers)."""
RENDER_CARRIER_TTL_S = 86400
"""How long Redis remembers which batch job carries an asset (longer than any job waits)."""
EVENTS_JOB = "workers.events.record_events"
EVENT_RESULT_TTL_S = 300
ABANDONED_AFTER_S = 30.0
"""A job still 'started' this long after it began died with its worker (SIGKILL, OOM): renders
and event batches take well under a second. RQ itself notices only when the job's registry
entry expires, minutes later. Running such a job twice is harmless: both kinds are idempotent."""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _carrier_key(audio_hash: str) -> str:
    return f"sespcl:render-carrier:{audio_hash}"


def render_batch_job_id(audio_hashes: list[str]) -> str:
    """The same batch (same assets, same order) is the same job."""
    return "render-batch-" + hashlib.sha256("\n".join(audio_hashes).encode()).hexdigest()[:32]


def _state(job: Job | None) -> str:
    if job is None:
        return "lost"
    status = job.get_status(refresh=False)
    if status == JobStatus.FINISHED:
        return "done"
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED) or _abandoned(job):
        return "lost"
    return "pending"


def _abandoned(job: Job) -> bool:
    if job.get_status(refresh=False) != JobStatus.STARTED or job.started_at is None:
        return False
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
    return (datetime.now(UTC) - started).total_seconds() > ABANDONED_AFTER_S


@contextmanager
def _redis_errors(what: str) -> Iterator[None]:
    """Redis's errors (and a socket's) as the port's QueueUnavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise QueueUnavailable(f"Redis did not take the {what}: {exc}") from exc


class WorkQueues:
    def __init__(self, redis: Redis, *, render_queue: str, events_queue: str) -> None:
        self.redis = redis
        self._render = Queue(render_queue, connection=redis)
        self._events = Queue(events_queue, connection=redis)

    def enqueue_render(self, audio_hash: str) -> None:
        # The job id makes a second enqueue of the same render while one waits a no-op in effect.
        with _redis_errors("render"):
            self._render.enqueue(
                RENDER_JOB, audio_hash, job_id=f"render-{audio_hash}", result_ttl=60, failure_ttl=3600
            )

    def enqueue_renders(self, audio_hashes: list[str]) -> None:
        """Many renders at once, pipelined (a templated campaign may bring thousands)."""
        with _redis_errors("renders"):
            for start in range(0, len(audio_hashes), 1000):
                chunk = audio_hashes[start : start + 1000]
                self._render.enqueue_many(
                    [
                        Queue.prepare_data(
                            RENDER_JOB, (h,), job_id=f"render-{h}", result_ttl=60, failure_ttl=3600
                        )
                        for h in chunk
                    ]
                )

    def enqueue_render_batch(self, audio_hashes: list[str]) -> str:
        """One job rendering these assets in this order (workers.tts.render_audio_batch); returns
        its id. The same batch enqueued again while its job waits or runs is that job. Redis also
        notes, per asset, the batch carrying it: the sweep for lost renders asks that job."""
        if not audio_hashes or len(audio_hashes) > RENDER_BATCH_MAX:
            raise ValueError(f"a render batch holds 1 to {RENDER_BATCH_MAX} assets, not {len(audio_hashes)}")
        job_id = render_batch_job_id(audio_hashes)
        with _redis_errors("render batch"):
            if self.batch_state(job_id) == "pending":
                return job_id
            with self.redis.pipeline(transaction=False) as pipe:
                for audio_hash in audio_hashes:
                    pipe.set(_carrier_key(audio_hash), job_id, ex=RENDER_CARRIER_TTL_S)
                pipe.execute()
            self._render.enqueue(
                RENDER_BATCH_JOB,
                audio_hashes,
                job_id=job_id,
                result_ttl=60,
                failure_ttl=3600,
                description=f"render {len(audio_hashes)} audio assets",
            )
        return job_id

    def requeue_lost_renders(self, audio_hashes: list[str]) -> int:
        """Enqueue again the renders whose job Redis no longer has (a flushed Redis, a worker
        killed mid-job), whether a single render's or a batch's. Returns how many were lost."""
        if not audio_hashes:
            return 0
        carriers = [_text(c) for c in self.redis.mget([_carrier_key(h) for h in audio_hashes])]
        singles = [f"render-{h}" for h in audio_hashes]
        job_ids = sorted(set(singles) | {c for c in carriers if c})
        states = dict(zip(job_ids, map(_state, Job.fetch_many(job_ids, connection=self.redis))))
        lost = [
            h
            for h, single, carrier in zip(audio_hashes, singles, carriers)
            if states[single] == "lost" and (carrier is None or states[carrier] == "lost")
        ]
        for start in range(0, len(lost), RENDER_REQUEUE_BATCH):
            self.enqueue_render_batch(lost[start : start + RENDER_REQUEUE_BATCH])
        return len(lost)

    def enqueue_events(self, batch: list[CallEvent]) -> str:
        """Returns the job's id; the finished job stays visible a minute so the sender can
        tell a recorded batch from a lost one."""
        # A description of our own: RQ's default is the repr of the arguments, here a batch of
        # a thousand events, built on every enqueue only to be cut to 75 characters.
        job = self._events.enqueue(
            EVENTS_JOB,
            batch,
            result_ttl=EVENT_RESULT_TTL_S,
            failure_ttl=86400,
            description=f"record {len(batch)} call events",
        )
        return str(job.id)

    def batch_state(self, job_id: str) -> str:
        """'done', 'pending' (queued or running), or 'lost' (gone, failed, stopped, canceled or
        abandoned with its worker). For event batches and renders alike."""
        try:
            return _state(Job.fetch(job_id, connection=self.redis))
        except NoSuchJobError:
            return "lost"

    def render_depth(self) -> int:
        return int(self._render.count)

    def depths(self) -> dict[str, int]:
        return {self._render.name: self._render.count, self._events.name: self._events.count}

    def worker_count(self) -> int:
        """RQ workers registered (each heartbeats; a dead one drops out within minutes)."""
        return int(Worker.count(connection=self.redis))

    def ping(self) -> bool:
        return bool(self.redis.ping())


class HeartbeatWorker(SimpleWorker):
    """SimpleWorker (jobs run in this process: the database connection and the speech engine
    are reused, instead of a fork per job) that also touches a heartbeat file on each of RQ's own
    heartbeats: between jobs, after each job, and every few seconds while it waits for one.

    Each heartbeat also registers the worker again (two SADDs): RQ registers it at start only,
    and a Redis that was flushed or restarted empty would list no worker at all (/health:
    "no worker") while every worker still runs."""

    heartbeat_file: Path | None = None

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if self.heartbeat_file is not None:
            beat(self.heartbeat_file)
        super().heartbeat(timeout, pipeline)
        register(self, pipeline)
