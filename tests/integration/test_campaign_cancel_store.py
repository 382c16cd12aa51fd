"""A campaign's cancel on the real PostgreSQL: the request marks the campaign and touches none of
its calls; no claim dials one after it, nor sends one claimed just before; the dispatcher's
background sweep then cancels every queued call, in batches, each with one status event, and the
kept counts are right when it finishes."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import pytest

from bench.scratch_campaign import scratch_campaign
from orchestrator.domain.campaign import CampaignStatus, CancelProgress
from orchestrator.persistence.calls import CAMPAIGN_CANCELED
from orchestrator.persistence.campaigns import CampaignStore
from orchestrator.persistence.db import Connection, Pool, open_pool
from orchestrator.persistence.dispatch.cancels import CampaignCallCancels, cancel_queued
from orchestrator.persistence.dispatch.claims import claim
from orchestrator.persistence.dispatch.ownership import mark_sending
from orchestrator.services.dispatch.cancels import CampaignCancelSweep

LARGE = 50_000
NODE = "cancel-n1"
OWNER = "test-campaign-cancel"


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set: run the suite with `make test` (it starts the stack)")
    opened = await open_pool(url, name="test-campaign-cancel", max_size=6)
    yield opened
    await opened.close()


@pytest.fixture
def trunk() -> str:
    """This test's calls' trunk: never committed to the trunks table, so a dispatcher that runs
    beside the test (the stack's) never claims them; only this test's own claims see it."""
    return f"cancel-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def own_farm(pool: Pool, trunk: str) -> AsyncIterator[Connection]:
    """A connection in a transaction where `trunk` and a node exist, for claims to dial on:
    everything done in it is rolled back at the end."""
    async with pool.connection() as conn, conn.transaction(force_rollback=True):
        await conn.execute("INSERT INTO trunks (name, host) VALUES (%s, '192.0.2.1')", (trunk,))
        await conn.execute(
            "INSERT INTO nodes (name, ami_host, ami_secret, max_channels) "
            "VALUES (%s, '192.0.2.1', 'unused', 1000) ON CONFLICT (name) DO NOTHING",
            (NODE,),
        )
        yield conn


async def _statuses(pool: Pool, campaign: UUID) -> tuple[dict[str, int], dict[str, int]]:
    """(the kept counts, a count of the calls): by status, for the campaign."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, sum(n) AS n FROM call_status_counts WHERE campaign_id = %s "
            "GROUP BY status HAVING sum(n) <> 0",
            (campaign,),
        )
        kept = {r["status"]: int(r["n"]) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT status, count(*) AS n FROM calls WHERE campaign_id = %s GROUP BY status", (campaign,)
        )
        real = {r["status"]: int(r["n"]) for r in await cur.fetchall()}
    return kept, real


async def _status_events(pool: Pool, campaign: UUID) -> tuple[int, int, set[str]]:
    """(status events of the campaign's calls, calls that have one, their reasons)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            # From the campaign's calls, each one's events counted through its index (an
            # aggregate is not flattened into a join): whatever the size of call_events (the
            # stack's) and whatever its statistics say.
            "SELECT coalesce(sum(s.n), 0) AS events, count(*) FILTER (WHERE s.n > 0) AS calls, "
            "array_agg(DISTINCT s.reason) FILTER (WHERE s.reason IS NOT NULL) AS reasons "
            "FROM calls c CROSS JOIN LATERAL ("
            "    SELECT count(*) AS n, max(e.data ->> 'reason') AS reason FROM call_events e"
            "    WHERE e.call_id = c.id AND e.type = 'status') s "
            "WHERE c.campaign_id = %s",
            (campaign,),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["events"]), int(row["calls"]), set(row["reasons"] or [])


async def _sweep_to_the_end(pool: Pool, batch: int) -> int:
    sweep = CampaignCancelSweep(CampaignCallCancels(pool), batch, stopped=lambda: False)
    total = 0
    while canceled := await sweep.step():
        total += canceled
    return total


async def _attempts_of(conn: Connection, campaign: UUID) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM call_attempts a JOIN calls c ON c.id = a.call_id WHERE c.campaign_id = %s",
        (campaign,),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else -1


async def test_a_large_cancel_answers_touching_no_call_and_the_sweep_cancels_them_all(
    pool: Pool, trunk: str
) -> None:
    campaigns = CampaignStore(pool)
    large = await scratch_campaign(pool, LARGE, trunk=trunk, name="large")
    other = await scratch_campaign(pool, 3, trunk=trunk, name="other")

    answer = await campaigns.set_status(large, CampaignStatus.CANCELED)
    assert answer["status"] == "canceled"
    kept, real = await _statuses(pool, large)
    assert kept == real == {"queued": LARGE}, "the cancel itself touched no call"
    assert await _status_events(pool, large) == (0, 0, set())
    counts, _ = await campaigns.progress(large)
    assert CancelProgress.of("canceled", counts) == CancelProgress(queued_left=LARGE)

    # A claim after the answer dials none of them: only the other campaign's calls.
    async with own_farm(pool, trunk) as conn:
        claimed = await claim(conn, OWNER, [NODE] * 40)
        cur = await conn.execute(
            "SELECT DISTINCT campaign_id FROM calls WHERE id = ANY(%s)", ([c.call_id for c in claimed],)
        )
        assert [r["campaign_id"] for r in await cur.fetchall()] == [other] and len(claimed) == 3
        assert await _attempts_of(conn, large) == 0

    await campaigns.set_status(other, CampaignStatus.CANCELED)
    await _sweep_to_the_end(pool, batch=5000)
    # The stack's own dispatchers sweep too: a batch one of them holds was skipped here, and is
    # theirs to finish. Sweep again until nothing is left queued.
    deadline = time.monotonic() + 60
    while (kept_real := await _statuses(pool, large))[1] != {"canceled": LARGE}:
        assert time.monotonic() < deadline, f"still not all canceled: {kept_real}"
        await _sweep_to_the_end(pool, batch=5000)
        await asyncio.sleep(0.2)
    kept, real = await _statuses(pool, large)
    assert kept == real == {"canceled": LARGE}
    assert await _status_events(pool, large) == (LARGE, LARGE, {CAMPAIGN_CANCELED})
    counts, _ = await campaigns.progress(large)
    progress = CancelProgress.of("canceled", counts)
    assert progress is not None and progress.done
    assert await _statuses(pool, other) == ({"canceled": 3}, {"canceled": 3})
    assert await _sweep_to_the_end(pool, batch=5000) == 0


async def test_two_sweeps_at_once_cancel_each_call_once(pool: Pool, trunk: str) -> None:
    campaign = await scratch_campaign(pool, 12_000, trunk=trunk, name="twice")
    await CampaignStore(pool).set_status(campaign, CampaignStatus.CANCELED)
    done = await asyncio.gather(_sweep_to_the_end(pool, batch=1000), _sweep_to_the_end(pool, batch=1000))
    assert sum(done) <= 12_000  # (the stack's dispatcher, if one runs, may sweep a share too)
    kept, real = await _statuses(pool, campaign)
    assert kept == real == {"canceled": 12_000}
    assert await _status_events(pool, campaign) == (12_000, 12_000, {CAMPAIGN_CANCELED})


async def test_calls_claimed_before_a_pause_or_cancel_are_never_sent(pool: Pool, trunk: str) -> None:
    campaign = await scratch_campaign(pool, 6, trunk=trunk, name="claimed")
    async with own_farm(pool, trunk) as conn:

        async def set_status(status: CampaignStatus) -> None:
            # As CampaignStore.set_status writes it, in this transaction: the claims' share locks
            # on the campaign are this transaction's own.
            await conn.execute("UPDATE campaigns SET status = %s WHERE id = %s", (status.value, campaign))

        claimed = await claim(conn, OWNER, [NODE] * 3)
        assert len(claimed) == 3
        await set_status(CampaignStatus.PAUSED)
        marked = await mark_sending(conn, OWNER, [c.attempt_id for c in claimed])
        assert marked.sent == frozenset() and {r.status.value for r in marked.requeued} == {"queued"}
        assert len(marked.requeued) == 3
        assert await claim(conn, OWNER, [NODE] * 3) == [], "a paused campaign's calls are not claimed"

        await set_status(CampaignStatus.ACTIVE)
        claimed = await claim(conn, OWNER, [NODE] * 2)
        assert len(claimed) == 2
        await set_status(CampaignStatus.CANCELED)
        marked = await mark_sending(conn, OWNER, [c.attempt_id for c in claimed])
        assert marked.sent == frozenset() and {r.status.value for r in marked.requeued} == {"canceled"}
        cur = await conn.execute(
            "SELECT status, status_reason, attempt_count FROM calls WHERE id = ANY(%s)",
            ([c.call_id for c in claimed],),
        )
        rows = await cur.fetchall()
        assert {(r["status"], r["status_reason"], r["attempt_count"]) for r in rows} == {
            ("canceled", CAMPAIGN_CANCELED, 0)
        }
        assert await _attempts_of(conn, campaign) == 0, "none was kept, none sent"
        canceled, position = await cancel_queued(conn, campaign, None, 5000)
        assert canceled == 4 and position is not None
        assert await cancel_queued(conn, campaign, position, 5000) == (0, None)
        cur = await conn.execute("SELECT DISTINCT status FROM calls WHERE campaign_id = %s", (campaign,))
        assert [r["status"] for r in await cur.fetchall()] == ["canceled"]
    await CampaignStore(pool).set_status(campaign, CampaignStatus.CANCELED)
    await _sweep_to_the_end(pool, batch=5000)
