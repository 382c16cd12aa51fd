"""`make bench-farm`: the orchestrator's own ceiling, on a simulated farm (bench/fake_asterisk).

Starts its own processes, none of the stack's: K simulated nodes on 127.0.70.1..K (AMI 5038, ARI
8088), registered with `sespcl nodes add`, a trunk with `sespcl trunks add`; the API (on
--api-port), workers and upkeep, in a database and a Redis database of the bench's own. Then, in
the same run:

- bare baselines: the simulated farm driven by a loop that only Originates (the farm's own
  answered calls/s), and PostgreSQL driven by a loop that stores the least rows a call costs;
- for 1 and for 2 dispatcher processes, a campaign of N calls uploaded through the API (bulk
  intake), dialed, followed to its final statuses: answered calls/s over the steady part of the
  run (from the final statuses in PostgreSQL), CPU ms per call by process (API, each dispatcher,
  workers, upkeep, PostgreSQL's sessions by process, the simulated nodes), events stored a
  second, and the scaling ratio two/one.

The database (its name must contain "farm") is dropped and made again at the start. The bench
connects to it as the URL says: as PostgreSQL's superuser when so given (as `make bench-farm`
does), so each process's own role and its grants are not what is measured here.
--million: one campaign of 1,000,000 calls with two dispatchers, accepted → final (not the default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from redis import Redis

from bench import farm_probe
from bench.dispatch import MachineBusy
from bench.farm_baselines import bare_ami_loop, bare_pg_loop
from bench.farm_campaign import outcome, upload, wait_events_stored, wait_final
from bench.farm_processes import CpuSample, FarmEnv, Processes, wait_ready
from bench.farm_report import Phase, print_report

TRUNK = "farm"
LOCK = Path(tempfile.gettempdir()) / "sespcl-bench-farm.lock"
TEXT = "Your power is back on. Thank you for your patience."


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql://postgres@localhost:5432/sespcl_farm")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--api-port", type=int, default=5070)
    parser.add_argument("--address-prefix", default="127.0.70.", help="node k listens on PREFIX+k")
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--capacity", type=int, default=500, help="channels per node")
    parser.add_argument("--answer-delay", type=float, default=0.5)
    parser.add_argument("--call-seconds", type=float, default=2.0)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measured campaign")
    parser.add_argument("--dispatchers", default="1,2", help="dispatcher processes per campaign, in turn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bare-seconds", type=float, default=12.0)
    parser.add_argument(
        "--million", action="store_true", help="one campaign of 1,000,000 calls, 2 dispatchers"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="the dispatchers time their claim loop and their event loop's lag (bench/farm_probe.py)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SESPCL_X=V",
        help="a setting for every orchestrator process",
    )
    return parser.parse_args()


LIFTED = {
    # The farm-wide cap (500/s) and one poll's batch (200 every 0.2 s: 1,000/s a dispatcher) are
    # the operator's; lifted here so that what limits is the orchestrator itself.
    "SESPCL_DISPATCH_CPS": "20000",
    "SESPCL_DISPATCH_BATCH": "2000",
}


def fresh_database(url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname", ""))
    if "farm" not in name:
        raise SystemExit(
            f"--database-url must name a database of the bench's own ('farm' in its name): {name!r}"
        )
    server = psycopg.conninfo.make_conninfo("", **(info | {"dbname": "postgres"}))
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def fresh_redis(url: str) -> None:
    redis = Redis.from_url(url)
    if int(redis.connection_pool.connection_kwargs.get("db", 0)) == 0:
        raise SystemExit("--redis-url must name a Redis database of the bench's own, not 0")
    redis.flushdb()


@contextlib.contextmanager
def farm(args: argparse.Namespace, env: FarmEnv) -> Iterator[Processes]:
    """Everything but the dispatchers, up; all of it stopped at the end."""
    processes = Processes(env)
    try:
        fresh_database(env.database_url)
        fresh_redis(env.redis_url)
        processes.run("db", "migrate")
        addresses = [f"{args.address_prefix}{k}" for k in range(1, args.nodes + 1)]
        nodes = [f"--node=f{k}={address}" for k, address in enumerate(addresses, start=1)]
        behaviour = [f"--capacity={args.capacity}", f"--answer-delay={args.answer_delay}",
                     f"--call-seconds={args.call_seconds}"]  # fmt: skip
        child = processes.start("nodes", *nodes, *behaviour, module="bench.fake_asterisk")
        wait_ready(child, env.logs / "nodes-1.log", "ready")
        for k, address in enumerate(addresses, start=1):
            processes.run(
                "nodes", "add", f"f{k}", "--ami-host", address, "--max-channels", str(args.capacity)
            )
        processes.run("trunks", "add", TRUNK, "--host", "127.0.70.250", "--default")
        processes.start("api", "serve")
        for _ in range(args.workers):
            processes.start("worker", "worker")
        processes.start("upkeep", "db", "upkeep")
        yield processes
    finally:
        processes.stop_all()


async def _healthy(client: httpx.AsyncClient) -> None:
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/health")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise SystemExit("the API did not answer /health")


async def _rendered(client: httpx.AsyncClient, campaign: str) -> None:
    for _ in range(300):
        renders = (await client.get(f"/v1/campaigns/{campaign}")).json().get("renders") or {}
        if renders.get("needed") and renders.get("ready") == renders.get("needed"):
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"campaign {campaign}: its audio was not rendered")


async def measure(
    client: httpx.AsyncClient,
    processes: Processes,
    db: psycopg.Connection,
    dispatchers: int,
    calls: int,
    probe: bool = False,
) -> Phase:
    """One campaign: uploaded, paused while the dispatchers start, then dialed to its end."""
    meter = CpuSample(processes, db)
    meter.start()
    campaign, intake_s = await upload(client, TRUNK, TEXT, calls)
    intake_cpu = meter.stop()
    await client.post(f"/v1/campaigns/{campaign}/pause")
    started = [
        processes.start("dispatcher", module="bench.farm_probe")
        if probe
        else processes.start("dispatcher", "dispatcher")
        for _ in range(dispatchers)
    ]
    await _rendered(client, campaign)
    await asyncio.sleep(3.0)  # the dispatchers connected to every node: their start is not a call's cost
    meter.start()
    busy, resumed = MachineBusy(), time.perf_counter()
    await client.post(f"/v1/campaigns/{campaign}/resume")
    await wait_final(client, campaign, calls, timeout_s=max(600.0, calls / 50))
    wait_events_stored(db)
    cores, seconds = busy.cores(), time.perf_counter() - resumed
    spent = meter.stop()
    processes.stop("dispatcher")
    for child in started if probe else []:
        print("  probe", farm_probe.summary(processes.logs[child.pid]), flush=True)
    return Phase(dispatchers, calls, intake_s, intake_cpu, outcome(db, campaign), spent, cores, seconds)


async def run(args: argparse.Namespace) -> None:
    settings = LIFTED | dict(item.split("=", 1) for item in args.set)
    logs = Path(tempfile.mkdtemp(prefix="sespcl-farm-"))
    env = FarmEnv(args.database_url, args.redis_url, args.api_port, logs / "audio", logs, settings)
    env.audio_dir.mkdir()
    print(f"logs: {logs}; settings: {settings}; DATABASE_URL={args.database_url} (the bench's own)")
    with farm(args, env) as processes:
        client = httpx.AsyncClient(
            base_url=env.api_url, headers={"Authorization": f"Bearer {env.api_key}"}, timeout=600
        )
        await _healthy(client)
        addresses = [f"{args.address_prefix}{k}" for k in range(1, args.nodes + 1)]
        bare_ami = 0.0
        if not args.million:
            bare_ami = await bare_ami_loop(
                addresses,
                env.ami_secret,
                args.capacity,
                TRUNK,
                args.bare_seconds,
                warm_s=args.answer_delay + args.call_seconds + 1,
            )
        bare_pg = bare_pg_loop(args.database_url, 20_000)
        phases: list[Phase] = []
        with psycopg.connect(args.database_url) as db:
            runs = [2] if args.million else [int(n) for n in args.dispatchers.split(",")]
            for dispatchers in runs:
                calls = 1_000_000 if args.million else args.calls
                phases.append(await measure(client, processes, db, dispatchers, calls, args.probe))
                print(f"  {dispatchers} dispatcher(s): done", flush=True)
        await client.aclose()
    ceiling = args.nodes * args.capacity / (args.answer_delay + args.call_seconds)
    print_report(phases, bare_ami=bare_ami, bare_pg=bare_pg, farm_ceiling=ceiling, cores=os.cpu_count() or 1)


def main() -> None:
    started = time.monotonic()
    with open(LOCK, "w") as lock:
        try:  # two runs at once would share the loopback addresses, the port and the database
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another bench-farm runs (it holds {LOCK})") from None
        asyncio.run(run(_arguments()))
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
