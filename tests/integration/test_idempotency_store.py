"""The bulk paths' Idempotency-Key store on the real PostgreSQL: one claim wins among many at
once, only the holder answers or releases, a stale claim is taken over, expired keys are swept
by the claims and taken anew."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from orchestrator.persistence.db import Pool, open_pool
from orchestrator.persistence.idempotency import SWEEP_BATCH, IdempotencyKeyStore
from orchestrator.services.idempotency import Answer, IdempotentRequests

DAY_S = 86400.0
STALE_S = 120.0


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set: run the suite with `make test` (it starts the stack)")
    opened = await open_pool(url, name="test-idempotency", max_size=20, prepare=False)
    yield opened
    await opened.close()


def _key(label: str) -> str:
    return f"test-{label}-{uuid.uuid4()}"


async def test_one_of_many_claims_at_once_wins(pool: Pool) -> None:
    store, key = IdempotencyKeyStore(pool), _key("race")
    holders = [uuid.uuid4() for _ in range(16)]
    claims = await asyncio.gather(*(store.claim(key, h, ttl_s=DAY_S, stale_after_s=STALE_S) for h in holders))
    winners = [c.holder for c in claims if c.holder is not None]
    assert len(winners) == 1 and sum(c.in_use for c in claims) == 15


async def test_only_the_holder_answers_and_an_answer_is_kept(pool: Pool) -> None:
    store, key, holder = IdempotencyKeyStore(pool), _key("answer"), uuid.uuid4()
    assert (await store.claim(key, holder, ttl_s=DAY_S, stale_after_s=STALE_S)).holder == holder
    await store.answer(key, uuid.uuid4(), "not-mine", Answer(202, {"accepted": 0}))
    await store.release(key, uuid.uuid4())
    assert (await store.claim(key, uuid.uuid4(), ttl_s=DAY_S, stale_after_s=STALE_S)).in_use

    answer = Answer(202, {"accepted": 2, "errors": [{"message": "Zoë's line"}]}, "/v1/campaigns/x")
    await store.answer(key, holder, "h1", answer)
    await store.release(key, holder)  # an answered key is not released
    replay = await store.claim(key, uuid.uuid4(), ttl_s=DAY_S, stale_after_s=STALE_S)
    assert (replay.answer, replay.request_hash, replay.holder) == (answer, "h1", None)


async def test_a_released_or_stale_claim_is_taken_again(pool: Pool) -> None:
    store, key = IdempotencyKeyStore(pool), _key("stale")
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert (await store.claim(key, first, ttl_s=DAY_S, stale_after_s=STALE_S)).holder == first
    await store.release(key, first)
    assert (await store.claim(key, second, ttl_s=DAY_S, stale_after_s=STALE_S)).holder == second
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE idempotent_requests SET touched_at = now() - interval '3 minutes' WHERE key = %s", (key,)
        )
    assert (await store.claim(key, third, ttl_s=DAY_S, stale_after_s=STALE_S)).holder == third
    await store.answer(key, second, "late", Answer(202, {}))  # the one taken over: no effect
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT holder, answer_status FROM idempotent_requests WHERE key = %s", (key,)
        )
        assert await cur.fetchone() == {"holder": third, "answer_status": None}


async def test_expired_keys_are_swept_by_claims_and_taken_anew(pool: Pool) -> None:
    store, prefix = IdempotencyKeyStore(pool), _key("expired")
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM idempotent_requests WHERE taken_at < now() - interval '1 day'")
        for i in range(SWEEP_BATCH + 20):  # older than anything else there: swept first
            await conn.execute(
                "INSERT INTO idempotent_requests (key, holder, taken_at, answer_status) "
                "VALUES (%s, %s, now() - interval '3650 days', 202)",
                (f"{prefix}-{i}", uuid.uuid4()),
            )
    await store.claim(_key("sweeper"), uuid.uuid4(), ttl_s=DAY_S, stale_after_s=STALE_S)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM idempotent_requests WHERE key LIKE %s", (f"{prefix}-%",)
        )
        assert await cur.fetchone() == {"n": 20}
    fresh = uuid.uuid4()
    assert (await store.claim(f"{prefix}-0", fresh, ttl_s=DAY_S, stale_after_s=STALE_S)).holder is not None


async def test_a_held_key_beats_while_its_work_runs(pool: Pool) -> None:
    requests = IdempotentRequests(IdempotencyKeyStore(pool), heartbeat_s=0.05)
    key = _key("beat")
    claim = await requests.claim(key)
    assert claim.holder is not None

    async def touched() -> object:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT touched_at > taken_at AS beat FROM idempotent_requests WHERE key = %s", (key,)
            )
            row = await cur.fetchone()
            return row and row["beat"]

    async def work() -> Answer:
        deadline = asyncio.get_running_loop().time() + 5
        while not await touched():
            assert asyncio.get_running_loop().time() < deadline, "no heartbeat"
            await asyncio.sleep(0.02)
        return Answer(201, {"id": "c"}, "/v1/campaigns/c")

    await requests.hold(key, claim.holder, work, lambda: "h")
    assert (await requests.claim(key)).answer == Answer(201, {"id": "c"}, "/v1/campaigns/c")
