"""`make bench-campaign-control`: how fast a million-call campaign's pause, resume and cancel
answer, and how fast its queued calls are then canceled in the background, next to a bare
one-row UPDATE of the campaign in the same run.

In a database of its own by default (made from schema.sql, `sespcl_bench_campaign_control`,
with SESPCL_DATABASE_ADMIN_URL; its calls truncated at every run; the stack's is never touched),
or in the database `--database-url` names (nothing truncated). The campaign is a scratch one of
`--rows` queued calls made with SQL (bench/scratch_campaign.py), or `--campaign ID` (it ends
CANCELED). Printed, each answer as its median and max over `--repeat`:

  bare     UPDATE campaigns SET updated_at = now() WHERE id = … (its own transaction)
  pause    CampaignStore.set_status(paused), as POST …/pause runs it (its describe aside)
  resume   CampaignStore.set_status(active)
  cancel   CampaignStore.set_status(canceled), once; then the calls still queued (none touched)
  http     with SESPCL_API_URL and SESPCL_API_KEY, and the API serving this database: POST
           …/pause, …/resume, …/cancel (again: a no-op cancel) next to GET /v1/campaigns/{id}
  sweep    the background cancel, as the dispatcher runs it (CampaignCancelSweep over
           CampaignCallCancels, --batch calls a transaction): rows/s, each batch's ms p50/max
  before   with --old-cancel: the cancel as it was (one statement over every queued call, in
           the request) on a second scratch campaign of the same size: what its answer took
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

import httpx

from bench.scratch_campaign import scratch_campaign
from bench.webhooks import prepare_database
from orchestrator.domain.campaign import CampaignStatus, CancelPosition
from orchestrator.logs import configure_logging
from orchestrator.persistence.campaigns import CampaignStore
from orchestrator.persistence.db import Pool, migrate, open_pool
from orchestrator.persistence.dispatch.cancels import CampaignCallCancels
from orchestrator.services.dispatch.cancels import CampaignCancelSweep
from orchestrator.services.dispatch.settings import CAMPAIGN_CANCEL_BATCH

TRUNK = "bench"
OWN_DATABASE = "sespcl_bench_campaign_control"

# The cancel before the background sweep (git history: persistence/campaigns.py), for --old-cancel.
_OLD_CANCEL_SQL = """
    WITH canceled AS (
        UPDATE calls c SET status = 'canceled', status_reason = 'campaign canceled',
               ended_at = now(), updated_at = now()
        FROM (SELECT id FROM calls WHERE campaign_id = %s AND status = 'queued'
              FOR UPDATE SKIP LOCKED) q
        WHERE c.id = q.id
        RETURNING c.id
    )
    INSERT INTO call_events (call_id, at, type, data)
    SELECT id, now(), 'status', jsonb_build_object('status', 'canceled', 'reason', 'campaign canceled')
    FROM canceled
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]


def line(label: str, samples: list[float], note: str = "") -> None:
    print(f"  {label:<9} median {ms(statistics.median(samples))}  max {ms(max(samples))}  {note}")


async def timed(step: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


def database(args: argparse.Namespace) -> str:
    """The database to run in: --database-url as it is, or the benchmark's own (made if missing,
    its calls truncated: bench/webhooks.py's)."""
    if args.database_url:
        migrate(args.database_url)
        return str(args.database_url)
    return prepare_database(args.admin_url, OWN_DATABASE)


async def queued(pool: Pool, campaign: UUID) -> int:
    counts, _ = await CampaignStore(pool).progress(campaign)
    return counts.get("queued", 0)


async def answers(pool: Pool, campaign: UUID, repeat: int) -> None:
    """The bare UPDATE, then pause and resume in turns, `repeat` times each."""
    store = CampaignStore(pool)

    async def bare() -> None:
        async with pool.connection() as conn:
            await conn.execute("UPDATE campaigns SET updated_at = now() WHERE id = %s", (campaign,))

    bare_s = [await timed(bare) for _ in range(repeat)]
    pause_s, resume_s = [], []
    for _ in range(repeat):
        pause_s.append(await timed(lambda: store.set_status(campaign, CampaignStatus.PAUSED)))
        resume_s.append(await timed(lambda: store.set_status(campaign, CampaignStatus.ACTIVE)))
    line("bare", bare_s, "one-row UPDATE of campaigns")
    line("pause", pause_s, f"x{statistics.median(pause_s) / statistics.median(bare_s):.1f} bare")
    line("resume", resume_s, f"x{statistics.median(resume_s) / statistics.median(bare_s):.1f} bare")


def api_client() -> httpx.AsyncClient | None:
    url, key = os.environ.get("SESPCL_API_URL"), os.environ.get("SESPCL_API_KEY")
    if not url or not key:
        print("  http     skipped: set SESPCL_API_URL and SESPCL_API_KEY (an API serving this database)")
        return None
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


async def http_call(api: httpx.AsyncClient, method: str, path: str) -> float:
    started = time.perf_counter()
    response = await api.request(method, path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed


async def http_answers(api: httpx.AsyncClient, campaign: UUID, repeat: int) -> bool:
    """GET, then POST …/pause and …/resume in turns; False if the API serves another database."""
    path = f"/v1/campaigns/{campaign}"
    if (await api.get(path)).status_code != 200:
        print(f"  http     skipped: {api.base_url} does not know the campaign (it serves another database)")
        return False
    get_s = [await http_call(api, "GET", path) for _ in range(repeat)]
    pause_s, resume_s = [], []
    for _ in range(repeat):
        pause_s.append(await http_call(api, "POST", path + "/pause"))
        resume_s.append(await http_call(api, "POST", path + "/resume"))
    line("http GET", get_s, "GET /v1/campaigns/{id}: the same description, no change")
    line("http pau", pause_s, "POST …/pause")
    line("http res", resume_s, "POST …/resume")
    return True


class TimedCancels(CampaignCallCancels):
    """The sweep's store, each batch timed."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self.batches: list[float] = []

    async def cancel_queued(
        self, campaign_id: UUID, after: CancelPosition | None, batch: int
    ) -> tuple[int, CancelPosition | None]:
        started = time.perf_counter()
        result = await super().cancel_queued(campaign_id, after, batch)
        self.batches.append(time.perf_counter() - started)
        return result


async def sweep(pool: Pool, batch: int) -> None:
    store = TimedCancels(pool)
    sweeper = CampaignCancelSweep(store, batch, stopped=lambda: False)
    started = time.perf_counter()
    canceled = 0
    while done := await sweeper.step():
        canceled += done
    elapsed = time.perf_counter() - started
    print(
        f"  sweep    {canceled:,} calls in {elapsed:.1f} s: {canceled / elapsed:,.0f} rows/s, "
        f"{len(store.batches)} batches of {batch:,}, each {ms(statistics.median(store.batches))} p50, "
        f"{ms(p90(store.batches))} p90, {ms(max(store.batches))} max"
    )


async def old_cancel(pool: Pool, rows: int) -> None:
    campaign = await scratch_campaign(pool, rows, trunk=TRUNK, name="bench before")
    async with pool.connection() as conn:
        await conn.execute("UPDATE campaigns SET status = 'canceled' WHERE id = %s", (campaign,))
        started = time.perf_counter()
        await conn.execute(_OLD_CANCEL_SQL, (campaign,))
        await conn.commit()
        elapsed = time.perf_counter() - started
    print(f"  before   {ms(elapsed)}  the old cancel's one statement over {rows:,} queued calls")


async def main(args: argparse.Namespace) -> None:
    url = database(args)
    pool = await open_pool(url, name="bench-campaign-control", max_size=4)
    try:
        if args.campaign:
            campaign = UUID(args.campaign)
        else:
            started = time.perf_counter()
            campaign = await scratch_campaign(pool, args.rows, trunk=TRUNK, name="bench")
            made_s = time.perf_counter() - started
            print(f"scratch campaign {campaign}: {args.rows:,} queued calls made in {made_s:.1f} s")
        left = await queued(pool, campaign)
        print(f"campaign {campaign}: {left:,} queued calls; answers over {args.repeat} tries")
        await answers(pool, campaign, args.repeat)
        api = api_client()
        served = api is not None and await http_answers(api, campaign, args.repeat)
        store = CampaignStore(pool)
        cancel_s = await timed(lambda: store.set_status(campaign, CampaignStatus.CANCELED))
        after = await queued(pool, campaign)
        line("cancel", [cancel_s], f"then {after:,} calls still queued: the sweep's")
        if api is not None and served:
            cancel_s = await http_call(api, "POST", f"/v1/campaigns/{campaign}/cancel")
            line("http can", [cancel_s], "POST …/cancel (again: the same one-row work, and the describe)")
        if api is not None:
            await api.aclose()
        await sweep(pool, args.batch)
        print(f"  queued   {await queued(pool, campaign):,} left")
        if args.old_cancel:
            await old_cancel(pool, args.rows)
    finally:
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="the scratch campaign's queued calls")
    parser.add_argument("--campaign", help="an existing campaign's id instead (it ends canceled)")
    parser.add_argument("--repeat", type=int, default=5, help="tries of each answer")
    parser.add_argument(
        "--batch", type=int, default=CAMPAIGN_CANCEL_BATCH, help="calls canceled per transaction"
    )
    parser.add_argument("--old-cancel", action="store_true", help="time the cancel as it was, too")
    parser.add_argument("--database-url", help="run in this database (default: the benchmark's own)")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("SESPCL_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a superuser's URL: makes the benchmark's own database",
    )
    configure_logging("warning", json=True)
    asyncio.run(main(parser.parse_args()))
