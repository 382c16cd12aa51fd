"""`make bench-dispatch`: answered calls per second end to end (API → render → dispatcher →
Asterisk → SIPp) against a bare AMI Originate loop on the same Asterisk node and SIPp carrier,
at a ramp of offered rates, in one run; then the most long calls held at once, both ways.

Prints, per offered rate: answered calls/s for both and their ratio, Originate→answer p50/p99
for both (and claim→answer for end to end, which adds the dispatcher's own spacing of a poll's
sends), calls that failed, and the CPU seconds the orchestrator's processes (API, dispatcher,
workers) and Asterisk spent per answered call. The bare loop has no pacing: past the node's clean
maximum it shows where Asterisk starts to fail (latency in seconds, throughput falling); the end
to end path paces the node itself (AIMD) and should hold near that maximum.
Node n2 is drained during the run so both paths use node n1 only. With --asterisk-cpus (as
`make bench-dispatch` runs it), n1's Asterisk runs alone on those cores and everything else on
the rest, as a farm node is deployed; otherwise both paths share every core with the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from panoramisk import Manager

from orchestrator.asterisk.ami import originate_action
from orchestrator.domain.dialing import OriginateRequest

TEXT = "Bench."


def _pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [
        int(p)
        for p in out
        if b"python" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]
        or pattern.startswith("asterisk")
    ]


def _cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class MachineBusy:
    """Cores this machine kept busy on average over a span (/proc/stat), whatever ran them: end
    to end shares the cores with Asterisk, SIPp and PostgreSQL, the bare loop hardly does."""

    def __init__(self) -> None:
        self._start = self._read()
        self._at = time.perf_counter()

    @staticmethod
    def _read() -> float:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def cores(self) -> float:
        return (self._read() - self._start) / max(time.perf_counter() - self._at, 1e-9)


def _threads() -> Iterator[tuple[int, int]]:
    """(pid, thread id) of every thread on the machine that can be read."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                for task in (proc / "task").iterdir():
                    yield int(proc.name), int(task.name)


def _pin(tid: int, cpus: set[int]) -> None:
    # Per-CPU kernel threads refuse, and threads end while we walk: both are left as they are.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def asterisk_apart(asterisk_pid: int, asterisk_cpus: set[int]) -> Iterator[None]:
    """Asterisk n1 on `asterisk_cpus` alone, everything else on the machine (the orchestrator,
    PostgreSQL, Redis, SIPp, node n2, this benchmark) on the other cores: as deployed, where the
    farm's nodes do not share their cores with the orchestrator. Both paths then drive the same
    Asterisk with the same cores, and what end to end costs shows as the orchestrator's own
    cores, not as cycles taken from Asterisk. New threads and processes inherit their parent's
    cores, so Asterisk's per-call threads and PostgreSQL's new sessions follow. Undone at exit."""
    every = os.sched_getaffinity(0)
    rest = every - asterisk_cpus
    if not asterisk_cpus < every or not rest:
        raise SystemExit(f"--asterisk-cpus must name some, not all, of the cores {sorted(every)}")
    try:
        for pid, tid in _threads():
            _pin(tid, asterisk_cpus if pid == asterisk_pid else rest)
        yield
    finally:
        for _, tid in _threads():
            _pin(tid, every)


def _pg_backends(db: psycopg.Connection) -> dict[str, list[int]]:
    """PostgreSQL's backend pids by session name (every process names its sessions)."""
    rows = db.execute(
        "SELECT application_name, pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    ).fetchall()
    db.commit()
    groups: dict[str, list[int]] = {}
    for name, pid in rows:
        # asterisk-n1 / asterisk-cdr-n1: the node's realtime lookups and its CDR inserts.
        group = "asterisk-cdr" if name.startswith("asterisk-cdr") else name.rsplit("-n", 1)[0]
        groups.setdefault(group or "other", []).append(int(pid))
    return groups


class CpuMeter:
    """CPU seconds spent by each part of the stack between `start` and `stop`.

    The orchestrator's processes (API, dispatcher, workers), Asterisk n1, and PostgreSQL's
    backends grouped by the session's application_name: where a call's cost really goes."""

    def __init__(self, db: psycopg.Connection, asterisk_pid: int) -> None:
        self._db = db
        self._asterisk = asterisk_pid
        self._before: dict[int, tuple[str, float]] = {}

    def _groups(self) -> dict[str, list[int]]:
        groups = {
            "api": _pids("bin/sespcl serve"),
            "dispatcher": _pids("bin/sespcl dispatcher"),
            "workers": _pids("bin/sespcl worker"),
            "asterisk": [self._asterisk],
        }
        return groups | {f"pg:{name}": pids for name, pids in _pg_backends(self._db).items()}

    def _sample(self) -> dict[int, tuple[str, float]]:
        # Per pid, read afresh each time: a session opened during the run counts from its start.
        return {pid: (name, _cpu_s([pid])) for name, pids in self._groups().items() for pid in pids}

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for pid, (name, cpu) in self._sample().items():
            spent[name] = spent.get(name, 0.0) + cpu - self._before.get(pid, (name, 0.0))[1]
        return spent


def _print_breakdown(breakdowns: list[tuple[float, dict[str, float]]]) -> None:
    """End to end CPU ms per answered call, by part: the orchestrator's processes, Asterisk, and
    PostgreSQL's sessions (pg:asterisk = the node's realtime lookups of trunks)."""
    if not breakdowns:
        return
    names = sorted({name for _, per_call in breakdowns for name in per_call})
    print("\nend to end, CPU ms per answered call by part:")
    print(f"{'offered/s':>9} " + " ".join(f"{name:>{max(8, len(name))}}" for name in names))
    for rate, per_call in breakdowns:
        print(
            f"{rate:9.0f} "
            + " ".join(f"{per_call.get(name, 0.0):>{max(8, len(name))}.2f}" for name in names),
            flush=True,
        )


def _bare_request(ident: str, to: str, audio: str, ring_s: int) -> OriginateRequest:
    """What the dispatcher would send, built the same way, minus everything around it."""
    return OriginateRequest(
        attempt_id=ident, to=to, trunk="demo", caller_id=None, audio_path=audio, call_id=ident,
        timeout_ms=ring_s * 1000, max_call_s=600,
    )  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bare_loop(secret: str, audio: str, rate: float, count: int) -> tuple[float, list[float], int]:
    """Originate `count` calls at `rate` per second straight over AMI; no database, no queue."""
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host="127.0.10.1",
        port=5038,
        username="sespcl",
        secret=secret,
        ping_delay=3600,
    )
    await manager.connect()
    await asyncio.sleep(0.5)
    latencies: list[float] = []

    async def one(i: int) -> bool:
        sent = time.perf_counter()
        ident = str(uuid.uuid4())
        reply = await manager.send_action(
            originate_action(_bare_request(ident, f"+1415555{i % 10000:04d}", audio, 30))
        )
        final = reply[-1] if isinstance(reply, list) else reply
        ok = final.get("Response") == "Success"
        if ok:
            latencies.append(time.perf_counter() - sent)
        return bool(ok)

    started = time.perf_counter()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    manager.close()
    return sum(results) / elapsed, latencies, sum(results)


async def end_to_end(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    rate: float,
    count: int,
    text: str = TEXT,
    two_way: dict[str, object] | None = None,
) -> tuple[float, list[float], int, str]:
    """`two_way`: fields added to the campaign's defaults (gather, machine_detection...)."""
    defaults = {"trunk": "demo", "tts": {"text": text}, "ring_timeout_s": 60, **(two_way or {})}
    response = await client.post(
        "/v1/campaigns",
        json={"name": f"bench-dispatch-{rate}-{count}-{uuid.uuid4().hex[:6]}", "defaults": defaults},
    )
    assert response.status_code == 201, response.text
    campaign = response.json()["id"]
    t0 = db.execute("SELECT clock_timestamp()").fetchone()[0]
    db.commit()
    # Offered as the bare loop offers: `rate` calls a second, uploaded in chunks every 0.25 s;
    # the dispatcher and its pacing decide how fast they go out.
    chunk = max(1, round(rate * 0.25))
    started = time.perf_counter()
    for n, first in enumerate(range(0, count, chunk)):
        rows = "".join(
            f'{{"to": "+1415555{i % 10000:04d}"}}\n' for i in range(first, min(count, first + chunk))
        ).encode()
        report = (
            await client.post(
                f"/v1/campaigns/{campaign}/calls",
                content=rows,
                headers={"Content-Type": "application/x-ndjson"},
            )
        ).json()
        assert report["accepted"] == min(count, first + chunk) - first, report
        await asyncio.sleep(max(0.0, started + (n + 1) * chunk / rate - time.perf_counter()))
    while True:
        row = db.execute(
            "SELECT count(*) FROM calls "
            "WHERE campaign_id = %s AND status IN ('queued', 'initiated', 'ringing')",
            (campaign,),
        ).fetchone()
        db.commit()
        if row and row[0] == 0:
            break
        await asyncio.sleep(0.2)
    rows_ = db.execute(
        "SELECT extract(epoch FROM a.answered_at - a.started_at), a.answered_at FROM call_attempts a "
        "JOIN calls c ON c.id = a.call_id WHERE c.campaign_id = %s AND a.answered_at IS NOT NULL",
        (campaign,),
    ).fetchall()
    db.commit()
    answered = len(rows_)
    # Like the bare loop: from the first submission to the last answer.
    span = (max(r[1] for r in rows_) - t0).total_seconds() if rows_ else float("inf")
    return answered / span, [float(r[0]) for r in rows_], answered, campaign


async def originate_to_answer(db: psycopg.Connection, campaign: str, answered: int) -> list[float]:
    """Originate → answer of a run's answered calls, as the bare loop measures it: from the
    moment the dispatcher sent each Originate (its `dispatch.claimed` event says when), read once
    the workers have stored those events."""
    query = (
        "SELECT extract(epoch FROM a.answered_at - (e.data->>'sent_at')::timestamptz) "
        "FROM call_attempts a JOIN calls c ON c.id = a.call_id "
        "JOIN call_events e ON e.attempt_id = a.id AND e.type = 'dispatch.claimed' "
        "WHERE c.campaign_id = %s AND a.answered_at IS NOT NULL AND e.data ? 'sent_at'"
    )
    rows: list[tuple[float]] = []
    for _ in range(150):
        rows = db.execute(query, (campaign,)).fetchall()
        db.commit()
        if len(rows) >= answered:
            break
        await asyncio.sleep(0.2)
    return [float(r[0]) for r in rows]


def _peak_concurrent(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


async def bare_hold(secret: str, audio: str, count: int, rate: float) -> tuple[int, int]:
    """Asterisk alone: `count` long calls at `rate`/s. Returns (peak concurrent answered, failed)."""
    manager = Manager(
        loop=asyncio.get_running_loop(), host="127.0.10.1", port=5038, username="sespcl", secret=secret
    )
    await manager.connect()
    await asyncio.sleep(0.5)
    ends: dict[str, float] = {}
    manager.register_event("Hangup", lambda _m, e: ends.setdefault(str(e.get("Uniqueid")), time.monotonic()))
    answers: dict[str, float] = {}

    async def one(i: int) -> None:
        ident = str(uuid.uuid4())
        reply = await manager.send_action(
            originate_action(_bare_request(ident, f"+1415556{i % 10000:04d}", audio, 60))
        )
        final = reply[-1] if isinstance(reply, list) else reply
        if final.get("Response") == "Success":
            answers[ident] = time.monotonic()

    started = time.perf_counter()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 180
    while len([k for k in answers if k in ends]) < len(answers) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    manager.close()
    spans = [(answers[k], ends.get(k, time.monotonic())) for k in answers]
    return _peak_concurrent(spans), count - len(answers)


async def e2e_hold(
    client: httpx.AsyncClient, db: psycopg.Connection, text: str, count: int, rate: float
) -> tuple[int, int]:
    """The same long calls through the whole product. Returns (peak concurrent answered, not completed)."""
    *_, campaign = await end_to_end(client, db, rate, count, text)
    query = (
        "SELECT extract(epoch FROM a.answered_at), extract(epoch FROM a.ended_at), c.status FROM calls c "
        "JOIN call_attempts a ON a.call_id = c.id WHERE c.campaign_id = %s"
    )
    while True:  # wait for the last hangups
        rows = db.execute(query, (campaign,)).fetchall()
        db.commit()
        if all(r[1] is not None for r in rows):
            break
        await asyncio.sleep(1)
    spans = [(float(a), float(b)) for a, b, _ in rows if a is not None]
    return _peak_concurrent(spans), sum(1 for *_, status in rows if status != "completed")


async def _render(client: httpx.AsyncClient, db: psycopg.Connection, text: str) -> str:
    """Render a prompt through the real path (one call); returns its file for the bare loop."""
    warm = (await client.post("/v1/calls", json={"to": "+14155550100", "tts": {"text": text}})).json()
    while (await client.get(f"/v1/calls/{warm['id']}")).json()["status"] in ("queued", "initiated"):
        await asyncio.sleep(0.2)
    row = db.execute(
        "SELECT a.path FROM calls c JOIN audio_assets a ON a.hash = c.audio_hash WHERE c.id = %s",
        (warm["id"],),
    ).fetchone()
    db.commit()
    assert row is not None
    return str(row[0])


async def _settle(db: psycopg.Connection) -> None:
    """Let the node go idle between runs, so one run's calls do not load the next."""
    while True:
        row = db.execute("SELECT count(*) FROM call_attempts WHERE ended_at IS NULL").fetchone()
        db.commit()
        if row and row[0] == 0:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


async def _hold_ramp(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    secret: str,
    holds: list[int],
    rate: float,
    meter: CpuMeter,
) -> None:
    """Ever more long calls up at once, both ways, until the bare loop fails (or the list ends).
    Node n1's channel limit is lifted for this part, so it is Asterisk that limits, not us.

    The CPU per call is printed here too: the short calls above are the worst case for the
    orchestrator's share (its cost is per call, Asterisk's grows with the call's length); a
    real notice lasts tens of seconds, like these."""
    # ~45 s of speech: at `rate` calls/s, `count` calls are all up at once when count/rate < 45.
    long_text = "This call is held open to measure how many calls a node carries at once. " * 11
    long_audio = await _render(client, db, long_text)
    await _settle(db)
    limit = db.execute("SELECT max_channels FROM nodes WHERE name = 'n1'").fetchone()[0]
    db.execute("UPDATE nodes SET max_channels = %s WHERE name = 'n1'", (max(holds) * 2,))
    db.commit()
    await asyncio.sleep(2.5)  # the dispatcher re-reads nodes every 2 s
    best = {"bare": 0, "e2e": 0}
    print(
        f"\n{'held calls':>10} | {'bare peak':>9} {'failed':>6} | {'e2e peak':>8} {'failed':>6} | "
        f"{'orch CPU ms/call':>16} {'Asterisk CPU ms/call':>20} {'orch/Asterisk':>13}"
    )
    try:
        for count in holds:
            bare_peak, bare_failed = await bare_hold(secret, long_audio, count, rate)
            await _settle(db)
            meter.start()
            e2e_peak, e2e_failed = await e2e_hold(client, db, long_text, count, rate)
            await _settle(db)
            per_call = {name: s / max(count - e2e_failed, 1) * 1e3 for name, s in meter.stop().items()}
            orch = per_call["api"] + per_call["dispatcher"] + per_call["workers"]
            print(
                f"{count:10d} | {bare_peak:9d} {bare_failed:6d} | {e2e_peak:8d} {e2e_failed:6d} | "
                f"{orch:16.1f} {per_call['asterisk']:20.1f} {orch / max(per_call['asterisk'], 1e-9):13.2f}",
                flush=True,
            )
            if not bare_failed:
                best["bare"] = max(best["bare"], bare_peak)
            if not e2e_failed:
                best["e2e"] = max(best["e2e"], e2e_peak)
            if bare_failed:
                break  # Asterisk's own limit is found
    finally:
        db.execute("UPDATE nodes SET max_channels = %s WHERE name = 'n1'", (limit,))
        db.commit()
    print(
        f"peak: most calls answered and up at the same moment; failed: not answered / not completed."
        f"\nmost held with no failure: Asterisk alone {best['bare']}, end to end {best['e2e']}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rates", default="50,100,150,200,300,400", help="offered calls per second, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="offered for this long at each rate")
    parser.add_argument("--calls", type=int, default=150, help="at least this many calls per rate and path")
    parser.add_argument(
        "--hold", default="500,1000,1500,2000", help="long calls held at once (empty: skip), comma-separated"
    )
    parser.add_argument("--hold-rate", type=float, default=100.0, help="calls/s placed for the held calls")
    parser.add_argument(
        "--asterisk-cpus",
        default="",
        help="cores for Asterisk n1 alone, comma-separated (e.g. 1); everything else runs on the others",
    )
    args = parser.parse_args()
    try:
        asterisk_cpus = {int(c) for c in args.asterisk_cpus.split(",") if c.strip()}
    except ValueError:
        parser.error(f"--asterisk-cpus takes core numbers, comma-separated, not {args.asterisk_cpus!r}")
    env = os.environ
    secret = dict(
        line.split("=", 1) for line in Path(env["SESPCL_STATE_DIR"], "secrets.env").read_text().split()
    )["SESPCL_AMI_SECRET"]
    client = httpx.AsyncClient(
        base_url=env["SESPCL_API_URL"],
        headers={"Authorization": f"Bearer {env['SESPCL_API_KEY']}"},
        timeout=120,
    )
    db = psycopg.connect(env["DATABASE_URL"])
    sespcl = str(Path(__file__).resolve().parents[1] / ".venv/bin/sespcl")
    subprocess.run([sespcl, "nodes", "drain", "n2"], check=True, capture_output=True)
    await asyncio.sleep(2.5)
    # The prompt, rendered once through the real path, is what the bare loop plays too.
    audio = await _render(client, db, TEXT)
    await _settle(db)
    asterisk_pid = int(Path(env["SESPCL_STATE_DIR"], "asterisk-n1.pid").read_text())
    meter = CpuMeter(db, asterisk_pid)
    placement = asterisk_apart(asterisk_pid, asterisk_cpus) if asterisk_cpus else contextlib.nullcontext()
    if asterisk_cpus:
        print(f"Asterisk n1 alone on cores {sorted(asterisk_cpus)}; everything else on the others")
    print(
        f"{'offered/s':>9} {'calls':>5} | {'bare ans/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'fail':>4} | "
        f"{'e2e ans/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'fail':>4} | "
        f"{'orig p50':>8} {'orig p99':>8} | {'ratio':>5} | "
        f"{'orch CPU ms/call':>16} {'Asterisk CPU ms/call':>20} | {'cores busy bare/e2e':>19}"
    )
    breakdowns: list[tuple[float, dict[str, float]]] = []
    undo = contextlib.ExitStack()
    try:
        undo.enter_context(placement)
        for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
            count = max(args.calls, int(rate * args.seconds))
            busy = MachineBusy()
            bare_rate, bare_lat, bare_ok = await bare_loop(secret, audio, rate, count)
            bare_cores = busy.cores()
            await _settle(db)
            meter.start()
            busy = MachineBusy()
            e2e_rate, e2e_lat, answered, campaign = await end_to_end(client, db, rate, count)
            e2e_cores = busy.cores()
            await _settle(db)  # every call ended and its events stored: all of its cost is in
            per_call = {name: s / max(answered, 1) * 1e3 for name, s in meter.stop().items()}
            sent_lat = await originate_to_answer(db, campaign, answered)
            breakdowns.append((rate, per_call))
            orch = per_call["api"] + per_call["dispatcher"] + per_call["workers"]
            print(
                f"{rate:9.0f} {count:5d} | {bare_rate:10.1f} {_pct(bare_lat, 0.5) * 1e3:7.0f} "
                f"{_pct(bare_lat, 0.99) * 1e3:7.0f} {count - bare_ok:4d} | "
                f"{e2e_rate:9.1f} {_pct(e2e_lat, 0.5) * 1e3:7.0f} {_pct(e2e_lat, 0.99) * 1e3:7.0f} "
                f"{count - answered:4d} | "
                f"{_pct(sent_lat, 0.5) * 1e3:8.0f} {_pct(sent_lat, 0.99) * 1e3:8.0f} | "
                f"{e2e_rate / bare_rate:5.2f} | {orch:16.1f} {per_call['asterisk']:20.1f} | "
                f"{bare_cores:9.2f} {e2e_cores:9.2f}",
                flush=True,
            )
        print(
            "\nanswered calls/s: answered calls / (first Originate or upload → last answer), the same for"
            "\nboth paths; p50/p99: Originate (bare) or claim (end to end) → answer; orig p50/p99: end to"
            "\nend's Originate → answer, the bare loop's measure; fail: not answered; cores busy: the"
            f"\nmachine's ({os.cpu_count()} cores), on average while each path ran."
        )
        _print_breakdown(breakdowns)
        holds = [int(n) for n in args.hold.split(",") if n.strip()]
        if holds:
            await _hold_ramp(client, db, secret, holds, args.hold_rate, meter)
    finally:
        undo.close()
        subprocess.run([sespcl, "nodes", "undrain", "n2"], check=True, capture_output=True)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
