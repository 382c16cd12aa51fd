"""Once calls are stored, a Redis failure while enqueuing their render is not the request's
error: a client would send the calls again and they would be called twice."""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisDown

from orchestrator.services.renders import enqueue_renders_stored


def test_a_failed_enqueue_is_logged_not_raised() -> None:
    asked: list[str] = []

    def down(what: object) -> None:
        asked.append(str(what))
        raise RedisDown("Connection refused")

    asyncio.run(enqueue_renders_stored(down, "abc"))
    assert asked == ["abc"]


def test_a_working_enqueue_is_called_once_with_its_argument() -> None:
    asked: list[object] = []
    asyncio.run(enqueue_renders_stored(asked.append, ["h1", "h2"]))
    assert asked == [["h1", "h2"]]
