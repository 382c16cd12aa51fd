"""Once calls are stored, a Redis failure while enqueuing their render is not the request's
error: a client would send the calls again and they would be called twice."""

from __future__ import annotations

import asyncio

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.domain.errors import QueueUnavailable
from orchestrator.queueing import WorkQueues
from orchestrator.services.renders import enqueue_renders_stored


def _nowhere() -> WorkQueues:
    """Queues on a Redis that refuses every connection (nothing listens on port 1)."""
    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    return WorkQueues(redis, render_queue="r", events_queue="e")


def test_the_queue_adapter_says_redis_failed_in_the_ports_words() -> None:
    queues = _nowhere()
    with pytest.raises(QueueUnavailable, match="Redis did not take the render"):
        queues.enqueue_render("a" * 64)
    with pytest.raises(QueueUnavailable, match="Redis did not take the renders"):
        queues.enqueue_renders(["a" * 64, "b" * 64])


def test_a_failed_enqueue_is_logged_not_raised() -> None:
    queues = _nowhere()
    asyncio.run(enqueue_renders_stored(queues.enqueue_render, "a" * 64))


def test_anything_but_the_queue_failing_is_not_swallowed() -> None:
    def broken(what: object) -> None:
        raise TypeError("a bug, not Redis")

    with pytest.raises(TypeError):
        asyncio.run(enqueue_renders_stored(broken, "abc"))


def test_a_working_enqueue_is_called_once_with_its_argument() -> None:
    asked: list[object] = []
    asyncio.run(enqueue_renders_stored(asked.append, ["h1", "h2"]))
    assert asked == [["h1", "h2"]]
