"""Render batches on the real Redis (REDIS_URL) and PostgreSQL (DATABASE_URL): enqueued once,
run by an RQ worker, found again by the sweep for lost renders when Redis loses them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from orchestrator.config import Settings
from orchestrator.domain.audio import SpeechRequest
from orchestrator.persistence.db import connect
from orchestrator.queueing import RENDER_BATCH_MAX, WorkQueues, render_batch_job_id


@pytest.fixture
def queues() -> Iterator[WorkQueues]:
    redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    name = f"test-render-{uuid.uuid4().hex[:8]}"
    yield WorkQueues(redis, render_queue=name, events_queue=f"{name}-events")
    Queue(name, connection=redis).empty()  # type: ignore[no-untyped-call]


def _hashes(count: int) -> list[str]:
    return [uuid.uuid4().hex * 2 for _ in range(count)]


def _queued(queues: WorkQueues) -> list[str]:
    return [str(job_id) for job_id in queues._render.job_ids]


def test_the_same_batch_twice_is_one_job(queues: WorkQueues) -> None:
    hashes = _hashes(3)
    first = queues.enqueue_render_batch(hashes)
    assert queues.enqueue_render_batch(list(hashes)) == first == render_batch_job_id(hashes)
    other = queues.enqueue_render_batch(list(reversed(hashes)))
    assert other != first
    assert _queued(queues) == [first, other]
    assert queues.batch_state(first) == "pending"
    job = Job.fetch(first, connection=queues.redis)
    assert job.func_name == "workers.tts.render_audio_batch" and job.args == (hashes,)


def test_a_batch_holds_one_to_the_most_assets(queues: WorkQueues) -> None:
    with pytest.raises(ValueError):
        queues.enqueue_render_batch([])
    with pytest.raises(ValueError):
        queues.enqueue_render_batch(_hashes(RENDER_BATCH_MAX + 1))


def test_assets_carried_by_a_waiting_batch_or_single_job_are_not_lost(queues: WorkQueues) -> None:
    batched, single = _hashes(3), _hashes(1)
    queues.enqueue_render_batch(batched)
    queues.enqueue_render(single[0])
    assert queues.requeue_lost_renders(batched + single) == 0
    assert len(_queued(queues)) == 2


def test_assets_whose_batch_redis_lost_are_enqueued_again_in_a_batch(queues: WorkQueues) -> None:
    batched, never = _hashes(2), _hashes(1)
    job_id = queues.enqueue_render_batch(batched)
    Job.fetch(job_id, connection=queues.redis).delete()  # as a flushed Redis or a killed worker
    assert queues.requeue_lost_renders(batched + never) == 3
    again = render_batch_job_id(batched + never)
    assert _queued(queues) == [again]
    assert queues.requeue_lost_renders(batched + never) == 0  # now carried by the new batch


def test_a_worker_runs_the_batch_and_the_assets_become_ready(
    queues: WorkQueues, db: psycopg.Connection[dict[str, Any]], tmp_path: Path
) -> None:
    from workers import context

    texts = [f"Hello {name}, queue test {uuid.uuid4().hex[:6]}." for name in ("Priya", "Wei", "Fatima")]
    keys = [SpeechRequest(text=text, voice="en-us").key() for text in texts]
    for key, text in zip(keys, texts):
        db.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text, created_at) "
            "VALUES (%s, 'espeak-ng', 'en-us', %s, now() + interval '1 hour')",
            (key, text),
        )
    context.install(
        context.WorkerContext(settings=Settings(audio_dir=tmp_path), db=connect(os.environ["DATABASE_URL"]))
    )
    job_id = queues.enqueue_render_batch(keys)

    SimpleWorker([queues._render], connection=queues.redis).work(burst=True)

    assert queues.batch_state(job_id) == "done"
    assert Job.fetch(job_id, connection=queues.redis).return_value() == dict.fromkeys(keys, "ready")
    rows = db.execute("SELECT hash, status FROM audio_assets WHERE hash = ANY(%s)", (keys,)).fetchall()
    assert {row["hash"]: row["status"] for row in rows} == dict.fromkeys(keys, "ready")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{key}.ulaw" for key in keys)
