"""`make bench-dispatch`: answered calls per second end to end (API → render → dispatcher →
Asterisk → SIPp) against a bare AMI Originate loop on the same Asterisk node and SIPp carrier,
at a ramp of offered rates, in one run.

Prints, per offered rate: answered calls/s for both and their ratio, Originate→answer p50/p99 for
both, and the CPU seconds the orchestrator's processes (API, dispatcher, workers) and Asterisk
spent per answered call. Node n2 is drained during the run so both paths use node n1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from panoramisk import Manager

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
            {
                "Action": "Originate",
                "ActionID": ident,
                "ChannelId": ident,
                "Channel": f"PJSIP/+1415555{i % 10000:04d}@demo",
                "Context": "sespcl-outbound",
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Timeout": "30000",
                "Variable": [f"SESPCL_AUDIO={audio}", f"SESPCL_CALL_ID={ident}"],
            }
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
    client: httpx.AsyncClient, db: psycopg.Connection, rate: float, count: int
) -> tuple[float, list[float], int]:
    campaign = (
        await client.post(
            "/v1/campaigns",
            json={
                "name": f"bench-dispatch-{rate}",
                "defaults": {"trunk": "demo", "tts": {"text": TEXT}},
                "cps": rate,
            },
        )
    ).json()["id"]
    rows = "".join(f'{{"to": "+1415555{i % 10000:04d}"}}\n' for i in range(count)).encode()
    t0 = db.execute("SELECT clock_timestamp()").fetchone()[0]
    db.commit()
    report = (
        await client.post(
            f"/v1/campaigns/{campaign}/calls", content=rows, headers={"Content-Type": "application/x-ndjson"}
        )
    ).json()
    assert report["accepted"] == count, report
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
    return answered / span, [float(r[0]) for r in rows_], answered


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="10,25,50", help="offered calls per second, comma-separated")
    parser.add_argument("--calls", type=int, default=150, help="calls per rate and path")
    args = parser.parse_args()
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
    warm = (await client.post("/v1/calls", json={"to": "+14155550100", "tts": {"text": TEXT}})).json()
    while (await client.get(f"/v1/calls/{warm['id']}")).json()["status"] in (
        "queued",
        "initiated",
        "in-progress",
    ):
        await asyncio.sleep(0.2)
    audio = db.execute(
        "SELECT a.path FROM calls c JOIN audio_assets a ON a.hash = c.audio_hash WHERE c.id = %s",
        (warm["id"],),
    ).fetchone()[0]
    orchestrator = _pids("bin/sespcl (serve|dispatcher|worker)")
    asterisk = [int(Path(env["SESPCL_STATE_DIR"], "asterisk-n1.pid").read_text())]
    print(
        f"{'offered/s':>9} | {'bare ans/s':>10} {'p50 ms':>7} {'p99 ms':>7} | {'e2e ans/s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} | {'ratio':>5} | {'orch CPU ms/call':>16} {'Asterisk CPU ms/call':>20}"
    )
    try:
        for rate in [float(r) for r in args.rates.split(",")]:
            bare_rate, bare_lat, _ = await bare_loop(secret, audio, rate, args.calls)
            await asyncio.sleep(3)
            cpu_o, cpu_a = _cpu_s(orchestrator), _cpu_s(asterisk)
            e2e_rate, e2e_lat, answered = await end_to_end(client, db, rate, args.calls)
            cpu_o, cpu_a = _cpu_s(orchestrator) - cpu_o, _cpu_s(asterisk) - cpu_a
            print(
                f"{rate:9.0f} | {bare_rate:10.1f} {_pct(bare_lat, 0.5) * 1e3:7.0f} "
                f"{_pct(bare_lat, 0.99) * 1e3:7.0f} | "
                f"{e2e_rate:9.1f} {_pct(e2e_lat, 0.5) * 1e3:7.0f} {_pct(e2e_lat, 0.99) * 1e3:7.0f} | "
                f"{e2e_rate / bare_rate:5.2f} | {cpu_o / max(answered, 1) * 1e3:16.1f} "
                f"{cpu_a / max(answered, 1) * 1e3:20.1f}",
                flush=True,
            )
            await asyncio.sleep(3)
    finally:
        subprocess.run([sespcl, "nodes", "undrain", "n2"], check=True, capture_output=True)
        await client.aclose()
    print(
        "\nanswered calls/s: answered calls / (first Originate or upload → last answer), the same for both"
        "\npaths; p50/p99: Originate (bare) or claim (end to end) → answer."
    )


if __name__ == "__main__":
    asyncio.run(main())
