"""`make bench-webhooks`: the webhook sender against a local receiver, next to a bare client.

In its own database (made from schema.sql, `sespcl_bench_webhooks` by default; the stack's is
never touched, nor its sender), calls with a status callback get their statuses changed by plain
UPDATEs, so the triggers write the outbox as the dispatcher's writes would. The sender
(`sespcl webhooks run`'s code: WebhookOutbox, HttpPoster, WebhookSender) delivers them to an
aiohttp receiver in its own process, which checks every signature and records when each event
arrived. Printed:

  bare      the same receiver driven by a plain aiohttp client loop (no database, no signing)
  backlog   N events already in the outbox when the sender starts: deliveries/s while draining
  steady    events made at --rate for --seconds: deliveries/s and the time from each event
            (its payload's `at`, stamped in the transaction that made it) to its arrival, p50/p99

The target is >= 500 deliveries/s sustained with p99 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import secrets
import time
from typing import Any

import aiohttp
import psycopg
from aiohttp import web

from orchestrator.domain.webhook_delivery import parse_secret
from orchestrator.domain.webhooks import AllowList
from orchestrator.logs import configure_logging
from orchestrator.persistence.db import migrate, open_pool
from orchestrator.persistence.webhooks import WebhookOutbox
from orchestrator.services.webhooks import SenderSettings, WebhookSender
from orchestrator.webhook_http import HttpPoster

RECEIVER_HOST = "127.0.0.1"
AUDIO_HASH = "b" * 64
STEPS = ("initiated", "ringing", "in-progress", "completed")


# ---- the receiver, in a process of its own -------------------------------------------------


def receiver_main(port: int, secret: str, ready: Any) -> None:
    from standardwebhooks import Webhook

    hook = Webhook(secret)
    arrivals: list[tuple[str, str, str, float]] = []  # (webhook-id, call_id, at, arrived)
    bad: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        webhook_id = request.headers.get("webhook-id", "")
        if webhook_id:
            try:
                payload = hook.verify(body, dict(request.headers))
            except Exception as exc:  # noqa: BLE001 - any refusal is a bad signature to count
                bad.append(f"{webhook_id}: {exc}")
                return web.Response(status=400)
            arrivals.append((webhook_id, payload["call_id"], payload["at"], arrived))
        else:
            arrivals.append(("", "", "", arrived))
        return web.Response(status=204)

    async def take(_: web.Request) -> web.Response:
        taken, bad_now = list(arrivals), list(bad)
        arrivals.clear()
        bad.clear()
        return web.json_response({"arrivals": taken, "bad": bad_now})

    app = web.Application()
    app.router.add_post("/hook", receive)
    app.router.add_post("/take", take)
    import uvloop

    uvloop.install()
    ready.set()
    web.run_app(app, host=RECEIVER_HOST, port=port, print=None, access_log=None)


async def take_arrivals(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{RECEIVER_HOST}:{port}/take") as answer,
    ):
        return dict(await answer.json())


# ---- the database --------------------------------------------------------------------------


def prepare_database(admin_url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    server = psycopg.conninfo.make_conninfo("", **(info | {"dbname": "postgres"}))
    with psycopg.connect(server, autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            c.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo("", **(info | {"dbname": name}))
    migrate(url)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("TRUNCATE calls CASCADE")
        c.execute("TRUNCATE webhook_stopped_urls")
        c.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text) VALUES (%s, 'espeak-ng', 'en-us', 'x') "
            "ON CONFLICT DO NOTHING",
            (AUDIO_HASH,),
        )
    return url


def insert_calls(conn: psycopg.Connection[Any], count: int, url: str, first: int) -> list[str]:
    rows = conn.execute(
        """
        INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s,
                           metadata, status_callback)
        SELECT gen_random_uuid(), '+1415' || (2000000 + g)::text, 'demo',
               'Your parcel arrives tomorrow between 9 and 11.', 'en-us', %s, 30,
               jsonb_build_object('order', 'A-' || g), jsonb_build_object('url', %s::text)
        FROM generate_series(%s::int, %s::int) g RETURNING id::text
        """,
        (AUDIO_HASH, url, first, first + count - 1),
    ).fetchall()
    return [r[0] for r in rows]


def step_calls(conn: psycopg.Connection[Any], ids: list[str], status: str) -> None:
    """One batched UPDATE, as the dispatcher writes transitions: the triggers make the events."""
    conn.execute(
        "UPDATE calls SET status = %s, attempt_count = 1, updated_at = now() WHERE id = ANY(%s::uuid[])",
        (status, ids),
    )


# ---- the runs ------------------------------------------------------------------------------


def rate_of(arrivals: list[list[Any]]) -> float:
    times = sorted(a[3] for a in arrivals)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


async def bare(port: int, count: int, concurrency: int) -> None:
    body = json.dumps({"type": "completed", "status": "completed"}).encode()
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.monotonic()
                async with session.post(f"http://{RECEIVER_HOST}:{port}/hook", data=body) as answer:
                    await answer.release()
                latencies.append(time.monotonic() - started)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.monotonic() - started
    await take_arrivals(port)
    print(
        f"bare     {count} POSTs in {took:.2f} s: {count / took:,.0f}/s; "
        f"request p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )


async def wait_for(port: int, expected: int, deadline_s: float) -> dict[str, list[Any]]:
    got: dict[str, list[Any]] = {"arrivals": [], "bad": []}
    deadline = time.monotonic() + deadline_s
    while len(got["arrivals"]) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        more = await take_arrivals(port)
        got["arrivals"] += more["arrivals"]
        got["bad"] += more["bad"]
    return got


def report(label: str, got: dict[str, list[Any]], expected: int) -> None:
    arrivals = got["arrivals"]
    ids = [a[0] for a in arrivals]
    lags = [a[3] - _epoch(a[2]) for a in arrivals]
    by_call: dict[str, list[float]] = {}
    for _, call_id, at, _arrived in arrivals:
        by_call.setdefault(call_id, []).append(_epoch(at))
    out_of_order = sum(1 for ats in by_call.values() if ats != sorted(ats))
    print(
        f"{label} {len(arrivals)}/{expected} delivered at {rate_of(arrivals):,.0f}/s; event→arrival "
        f"p50 {percentile(lags, 0.5) * 1000:.0f} ms, p99 {percentile(lags, 0.99) * 1000:.0f} ms, "
        f"max {max(lags, default=0) * 1000:.0f} ms; duplicates {len(ids) - len(set(ids))}, "
        f"calls out of order {out_of_order}, bad signatures {len(got['bad'])}"
    )


def _epoch(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


async def run_sender(
    url: str, key: bytes, concurrency: int, batch: int
) -> tuple[WebhookSender, asyncio.Task[None]]:
    pool = await open_pool(url, name="bench-webhooks", max_size=4)
    poster = HttpPoster(AllowList.parse(RECEIVER_HOST), connections=concurrency)
    await poster.open()
    sender = WebhookSender(
        WebhookOutbox(pool), poster, key, SenderSettings(concurrency=concurrency, batch=batch)
    )

    async def run() -> None:
        try:
            await sender.run()
        finally:
            await poster.close()
            await pool.close()

    return sender, asyncio.create_task(run())


async def main(args: argparse.Namespace) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    key = parse_secret(secret)
    port = args.port
    ready = multiprocessing.get_context("spawn").Event()
    receiver = multiprocessing.get_context("spawn").Process(target=receiver_main, args=(port, secret, ready))
    receiver.start()
    ready.wait(10)
    await asyncio.sleep(0.5)
    try:
        db_url = prepare_database(args.admin_url, args.database)
        hook_url = f"http://{RECEIVER_HOST}:{port}/hook"
        print(f"database {args.database}, receiver {hook_url}, concurrency {args.concurrency}")
        await bare(port, args.events, args.concurrency)
        with psycopg.connect(db_url, autocommit=True) as conn:
            calls = insert_calls(conn, args.events // len(STEPS), hook_url, 1)
            started = time.monotonic()
            for status in STEPS:
                step_calls(conn, calls, status)
            took = time.monotonic() - started
            print(f"backlog  {len(calls) * len(STEPS)} events written by the triggers in {took:.2f} s")
            # As autovacuum (or, where it is off, the stack's upkeep) would: with the statistics
            # of an empty outbox, the claim's plan sorts every pending row at each claim.
            conn.execute("ANALYZE webhook_deliveries")
            sender, task = await run_sender(db_url, key, args.concurrency, args.batch)
            report("backlog ", await wait_for(port, len(calls) * len(STEPS), 300), len(calls) * len(STEPS))
            await steady(conn, port, hook_url, args)
            sender.stop()
            await task
    finally:
        receiver.terminate()
        receiver.join()


async def steady(conn: psycopg.Connection[Any], port: int, hook_url: str, args: argparse.Namespace) -> None:
    """Events at `args.rate` a second: every 50 ms a batch of calls moves one status on."""
    per_tick = max(1, round(args.rate * 0.05))
    ticks = int(args.seconds / 0.05)
    calls = insert_calls(conn, per_tick * ticks // len(STEPS) + per_tick, hook_url, 1_000_000)
    queue = [(call, status) for call in calls for status in STEPS]
    # Interleave so each tick moves different calls: tick k takes calls k*per_tick.., step k % 4.
    order = sorted(range(len(queue)), key=lambda i: (i % len(STEPS), i // len(STEPS)))
    events = [queue[i] for i in order][: per_tick * ticks]
    started = time.monotonic()
    busy = 0.0
    for tick in range(ticks):
        chunk = events[tick * per_tick : (tick + 1) * per_tick]
        began = time.monotonic()
        # In a thread: the sender shares this event loop and must not wait for the producer.
        await asyncio.to_thread(step_chunk, conn, chunk)
        busy += time.monotonic() - began
        await asyncio.sleep(max(0.0, started + (tick + 1) * 0.05 - time.monotonic()))
    produced = time.monotonic() - started
    print(f"steady   {len(events)} events made in {produced:.1f} s ({busy / produced:.0%} of it in UPDATEs)")
    report("steady  ", await wait_for(port, len(events), 60), len(events))


def step_chunk(conn: psycopg.Connection[Any], chunk: list[tuple[str, str]]) -> None:
    for status in STEPS:
        ids = [call for call, s in chunk if s == status]
        if ids:
            step_calls(conn, ids, status)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000, help="backlog events (and bare POSTs)")
    parser.add_argument("--rate", type=float, default=600.0, help="steady events a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="steady phase length")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--port", type=int, default=18711)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("SESPCL_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a superuser's URL: makes the benchmark's database",
    )
    parser.add_argument(
        "--database",
        default="sespcl_bench_webhooks",
        help="the benchmark's own database: made if missing, its calls truncated at every run",
    )
    configure_logging("warning", json=True)
    asyncio.run(main(parser.parse_args()))
