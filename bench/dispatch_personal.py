"""`make bench-dispatch`'s personal run: a personalised campaign beside a fixed-text one on
the same stack, one after the other, each uploaded paused and then resumed.

The personal campaign's every row has a name of its own (never rendered before: each run makes
new ones) and a six-digit code, so every call needs a render of its own before it can dial: the
render planner must keep ahead of dialing. The fixed campaign says the same sentence with one
name and code for all, so its calls last as long: what differs is the personalisation alone.
Prints, for each: seconds from the resume to the first answered call, answered calls/s from the
resume to the last answer, and the ratio personal/fixed (target ≥ 0.9); then the renders the
personal campaign needed and the rate the workers rendered them at on the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from bench.dispatch import CpuMeter

PERSONAL = "Hello {{name}}, your appointment code is {{code|digits}}. Thank you, goodbye."
FIXED = (
    "Hello Amara J. K. Achebe-Lindqvist, your appointment code is four eight two, nine one six. "
    "Thank you, goodbye."
)
"""The personal message with one name and code for all: calls as long, one render."""
FIRST = ("Amara", "Bogdan", "Chiara", "Dmitri", "Esperanza", "Fintan", "Greta", "Haruto", "Ines", "Jomo")
LAST = ("Achebe", "Brennan", "Castillo", "Dimitrov", "Eriksen", "Fujita", "Gallagher", "Horvat")
SECOND_LAST = (
    "Lindqvist", "Mbeki", "Novak", "Oyelaran", "Petrosyan", "Quintero", "Rahman", "Sato", "Tremblay",
    "Usman", "Varga", "Wojcik", "Xu", "Yilmaz", "Zapata", "Abara", "Bianchi", "Cohen", "Delacroix",
    "Eze", "Fonseca", "Grünewald", "Halvorsen", "Ivanova", "Jansen", "Kaur", "Lombardi", "Moreau",
)  # fmt: skip


def personal_row(i: int, to: str, second_last: str) -> dict[str, str]:
    """A realistic name, about as long to say as any (a first name, two initials, a double
    surname whose second half is the run's, so earlier runs rendered none of them), and a code."""
    initials = f"{chr(65 + i // 80 % 26)}. {chr(65 + i // 2080 % 26)}."
    return {
        "to": to,
        "name": f"{FIRST[i % 10]} {initials} {LAST[i // 10 % 8]}-{second_last}",
        "code": f"{(i * 7919 + 17) % 1_000_000:06d}",
    }


async def run_campaign(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    meter: CpuMeter,
    *,
    text: str,
    row: Callable[[int, str], dict[str, str]],
    count: int,
    cps: float,
) -> tuple[float, float, int, str, dict[str, float]]:
    """(seconds from the resume to the first answer, answered/s from the resume to the last
    answer, answered, campaign id, CPU ms per answered call by part from the resume on)."""
    created = await client.post(
        "/v1/campaigns",
        json={
            "name": f"bench-personal-{uuid.uuid4().hex[:6]}",
            "defaults": {"trunk": "demo", "tts": {"text": text}, "ring_timeout_s": 60},
            "cps": cps,
        },
    )
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    assert (await client.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    body = "\n".join(json.dumps(row(i, f"+1415555{i % 10000:04d}")) for i in range(count)).encode()
    report = (
        await client.post(
            f"/v1/campaigns/{campaign}/calls", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
    ).json()
    assert report["accepted"] == count, report
    resumed = db.execute("SELECT clock_timestamp()").fetchone()[0]
    db.commit()
    meter.start()
    assert (await client.post(f"/v1/campaigns/{campaign}/resume")).status_code == 200
    while True:
        left = db.execute(
            "SELECT count(*) FROM calls "
            "WHERE campaign_id = %s AND status IN ('queued', 'initiated', 'ringing')",
            (campaign,),
        ).fetchone()
        db.commit()
        if left and left[0] == 0:
            break
        await asyncio.sleep(0.5)
    spent = meter.stop()
    first, last, answered = db.execute(
        "SELECT min(a.answered_at), max(a.answered_at), count(*) FROM call_attempts a "
        "JOIN calls c ON c.id = a.call_id WHERE c.campaign_id = %s AND a.answered_at IS NOT NULL",
        (campaign,),
    ).fetchone()
    db.commit()
    if not answered:
        return float("inf"), 0.0, 0, campaign, {}
    per_call = {
        "orchestrator": sum(spent.get(k, 0.0) for k in ("api", "dispatcher", "workers")),
        "asterisk n1": spent.get("asterisk", 0.0) * 2,  # n1 takes half the calls: both nodes'
        "postgresql": sum(v for k, v in spent.items() if k.startswith("pg:")),
    }
    return (
        (first - resumed).total_seconds(),
        answered / (last - resumed).total_seconds(),
        int(answered),
        campaign,
        {k: v / answered * 1e3 for k, v in per_call.items()},
    )


def renders_of(db: psycopg.Connection, campaign: str) -> tuple[int, int, float]:
    """(audio the campaign needed, how much of it was rendered for it, rendered per second
    between the first and the last of those renders)."""
    needed, fresh, span = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE a.rendered_at >= k.created_at), "
        "extract(epoch FROM max(a.rendered_at) FILTER (WHERE a.rendered_at >= k.created_at) "
        "- min(a.rendered_at) FILTER (WHERE a.rendered_at >= k.created_at)) "
        "FROM campaign_audio n JOIN audio_assets a ON a.hash = n.hash "
        "JOIN campaigns k ON k.id = n.campaign_id "
        "WHERE n.campaign_id = %s",
        (campaign,),
    ).fetchone()
    db.commit()
    return int(needed), int(fresh), (int(fresh) / float(span) if span else float("nan"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="calls in each campaign (at most 10,000)")
    parser.add_argument("--cps", type=float, default=80.0, help="each campaign's own cap on calls/s")
    parser.add_argument(
        "--surname",
        choices=SECOND_LAST,
        help="the second half of every name (default: one at random; one an earlier run used "
        "finds its names rendered, which leaves the renders' cost out)",
    )
    args = parser.parse_args()
    api, key = os.environ["SESPCL_API_URL"], os.environ["SESPCL_API_KEY"]
    run = args.surname or random.choice(SECOND_LAST)
    state = Path(os.environ["SESPCL_STATE_DIR"])
    with psycopg.connect(os.environ["DATABASE_URL"]) as db:
        meter = CpuMeter(db, int((state / "asterisk-n1.pid").read_text()))
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            fixed = await run_campaign(
                client, db, meter, text=FIXED, row=lambda i, to: {"to": to}, count=args.calls, cps=args.cps
            )
            started = time.perf_counter()
            personal = await run_campaign(
                client,
                db,
                meter,
                text=PERSONAL,
                row=lambda i, to: personal_row(i, to, run),
                count=args.calls,
                cps=args.cps,
            )
            personal_wall = time.perf_counter() - started
        needed, fresh, rendered_per_s = renders_of(db, personal[3])
    print(
        f"\npersonal vs fixed campaign, {args.calls:,} calls each, cps {args.cps:g}, "
        "uploaded paused then resumed"
    )
    print(
        f"{'campaign':10} {'first answer after resume':>26} {'answered/s':>11} {'answered':>9}  "
        "CPU ms per answered call: orchestrator / Asterisk (both nodes) / PostgreSQL"
    )
    for name, (first_s, rate, answered, _, cpu) in (("fixed", fixed), ("personal", personal)):
        print(
            f"{name:10} {first_s:>24.1f} s {rate:>11.1f} {answered:>9,}  "
            + " / ".join(
                f"{cpu.get(part, 0.0):.1f}" for part in ("orchestrator", "asterisk n1", "postgresql")
            )
        )
    print(f"ratio personal/fixed answered/s: {personal[1] / fixed[1]:.2f} (target >= 0.9)")
    print(
        f"personal campaign: {needed:,} audio needed, {fresh:,} rendered for it by the stack's workers "
        f"at {rendered_per_s:,.0f} prompts/s while it dialed ({personal_wall:.0f} s in all; names "
        f"ending -{run})"
    )


if __name__ == "__main__":
    asyncio.run(main())
