"""`make bench-dispatch`'s second run: calls that answer back (gather and machine_detection
on) against plain calls, end to end, at each offered rate, in one run.

Both paths place the same number of calls through the same campaign upload, the dispatcher and
Asterisk n1 (n2 drained), to the demo carrier (SIPp: answers, stays silent, so AMD hears
silence and the gather times out). Prints, per rate: answered calls/s of each and their
ratio, and the CPU ms the orchestrator's processes (API, dispatcher, workers) and Asterisk spent
per answered call, with the orchestrator's ratio. A two-way call lasts longer on the node (AMD
listens, the gather waits), so more calls are up at once; the dispatcher's work per call is
what the target is about: within 10 % of a plain call's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import psycopg

from bench.dispatch import CpuMeter, _settle, end_to_end

SHORT = "Bench."
LONG = "Bench, a longer message that lasts about as long as a two way call does, five seconds or so."
"""A plain prompt about as long as a two-way call lasts on the demo carrier (AMD hears 2.5 s of
silence, the prompt, 1 s of gather): calls held as long cost more for that alone."""
TWO_WAY = {
    "gather": {"num_digits": 1, "timeout_s": 1, "retries": 0},
    "on_digits": {"1": {"tts": {"text": "Thank you, confirmed."}}},
    "machine_detection": "enable",
}


ORCHESTRATOR = ("api", "dispatcher", "workers")


async def idle_rate(meter: CpuMeter, seconds: float = 10.0) -> float:
    """The orchestrator's CPU seconds per second with no call at all (its loops, pings and
    heartbeats): a run that lasts longer pays more of it, whatever its calls cost."""
    meter.start()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    spent = meter.stop()
    return sum(spent[k] for k in ORCHESTRATOR) / (time.perf_counter() - started)


async def _run(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    meter: CpuMeter,
    idle: float,
    rate: float,
    count: int,
    text: str,
    two_way: dict[str, object] | None,
) -> tuple[float, float, float, float, int, float]:
    """(answered/s, orchestrator CPU ms per answered call, the same without the idle cost of the
    run's length, Asterisk's, answered, mean seconds an answered call lasted)."""
    meter.start()
    started = time.perf_counter()
    answered_rate, _, answered, campaign = await end_to_end(
        client, db, rate, count, text=text, two_way=two_way
    )
    await _settle(db)
    spent = meter.stop()
    idle_s = idle * (time.perf_counter() - started)
    row = db.execute(
        "SELECT avg(extract(epoch FROM a.ended_at - a.answered_at)) FROM call_attempts a "
        "JOIN calls c ON c.id = a.call_id WHERE c.campaign_id = %s AND a.answered_at IS NOT NULL",
        (campaign,),
    ).fetchone()
    db.commit()
    per_call = {k: spent[k] / max(answered, 1) * 1e3 for k in ("api", "dispatcher", "workers", "asterisk")}
    orch = sum(per_call[k] for k in ORCHESTRATOR)
    net = orch - idle_s / max(answered, 1) * 1e3
    return answered_rate, orch, net, per_call["asterisk"], answered, float(row[0] or 0.0) if row else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="40,80", help="offered calls per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="offered for this long at each rate")
    args = parser.parse_args()
    env = os.environ
    client = httpx.AsyncClient(
        base_url=env["SESPCL_API_URL"],
        headers={"Authorization": f"Bearer {env['SESPCL_API_KEY']}"},
        timeout=120,
    )
    db = psycopg.connect(env["DATABASE_URL"])
    sespcl = str(Path(__file__).resolve().parents[1] / ".venv/bin/sespcl")
    subprocess.run([sespcl, "nodes", "drain", "n2"], check=True, capture_output=True)
    try:
        meter = CpuMeter(db, int(Path(env["SESPCL_STATE_DIR"], "asterisk-n1.pid").read_text()))
        await _settle(db)
        idle = await idle_rate(meter)
        print("two-way calls (gather + machine_detection) against plain calls, end to end:")
        print(f"orchestrator idle: {idle * 1e3:.1f} CPU ms/s (its loops, pings, heartbeats, with no call)")
        print(
            f"{'offered/s':>9} {'path':>14} {'calls':>5} {'held s':>6} | {'ans/s':>6} {'ratio':>5} | "
            f"{'orch CPU ms/call':>16} {'ratio':>5} | {'less idle':>9} {'ratio':>5} | "
            f"{'Asterisk ms/call':>16}"
        )
        for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
            count = int(rate * args.seconds)
            runs = {
                "plain": await _run(client, db, meter, idle, rate, count, SHORT, None),
                "plain, as long": await _run(client, db, meter, idle, rate, count, LONG, None),
                "two-way": await _run(client, db, meter, idle, rate, count, SHORT, TWO_WAY),
            }
            base = runs["plain"]
            for path, (ans, orch, net, asterisk, answered, held) in runs.items():
                print(
                    f"{rate:9.0f} {path:>14} {count:5d} {held:6.1f} | {ans:6.1f} {ans / base[0]:5.2f} | "
                    f"{orch:16.2f} {orch / base[1]:5.2f} | {net:9.2f} {net / base[2]:5.2f} | {asterisk:16.2f}"
                    + (f"   not answered: {count - answered}" if answered < count else ""),
                    flush=True,
                )
        print(
            "\nratio: against plain calls at the same rate; held s: how long an answered call lasted;"
            "\nless idle: the orchestrator's CPU less its idle rate over the run (a run of longer calls"
            "\nlasts longer, and pays more idle time for that alone: compare 'plain, as long')."
        )
    finally:
        subprocess.run([sespcl, "nodes", "undrain", "n2"], check=True, capture_output=True)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
