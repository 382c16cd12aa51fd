"""`make bench-dispatch`'s personal run: a personalised campaign beside a fixed-text one on the
same stack, one after the other, each uploaded paused and then resumed.

The personal campaign's every row has a name of its own (never rendered before: each run makes
new ones) and a six-digit code, so every call needs a render of its own before it can dial: the
render planner must keep ahead of dialing. Prints, for each: seconds from the resume to the
first answered call, answered calls/s from the resume to the last answer, and the ratio
personal/fixed (target ≥ 0.9); then the renders the personal campaign needed and the rate the
workers rendered them at on the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable

import httpx
import psycopg

FIXED = "Hello, this is your clinic. Your appointment tomorrow is confirmed. Thank you, goodbye."
PERSONAL = "Hello {{name}}, your appointment code is {{code|digits}}. Thank you, goodbye."
FIRST = ("Amara", "Bogdan", "Chiara", "Dmitri", "Esperanza", "Fintan", "Greta", "Haruto", "Ines", "Jomo")
LAST = ("Achebe", "Brennan", "Castillo", "Dimitrov", "Eriksen", "Fujita", "Gallagher", "Horvat")


def personal_row(i: int, to: str, run: str) -> dict[str, str]:
    """A name no earlier run used (the run's tag in it), and a code."""
    return {
        "to": to,
        "name": f"{FIRST[i % 10]} {LAST[i // 10 % 8]} {run}{i}",
        "code": f"{(i * 7919 + 17) % 1_000_000:06d}",
    }


async def run_campaign(
    client: httpx.AsyncClient,
    db: psycopg.Connection,
    *,
    text: str,
    row: Callable[[int, str], dict[str, str]],
    count: int,
    cps: float,
) -> tuple[float, float, int, str]:
    """(seconds from the resume to the first answer, answered/s from the resume to the last
    answer, answered, campaign id)."""
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
    first, last, answered = db.execute(
        "SELECT min(a.answered_at), max(a.answered_at), count(*) FROM call_attempts a "
        "JOIN calls c ON c.id = a.call_id WHERE c.campaign_id = %s AND a.answered_at IS NOT NULL",
        (campaign,),
    ).fetchone()
    db.commit()
    if not answered:
        return float("inf"), 0.0, 0, campaign
    return (
        (first - resumed).total_seconds(),
        answered / (last - resumed).total_seconds(),
        int(answered),
        campaign,
    )


def renders_of(db: psycopg.Connection, campaign: str) -> tuple[int, float]:
    """(audio the campaign needed, rendered per second between its first and last render)."""
    needed, span = db.execute(
        "SELECT count(*), extract(epoch FROM max(a.rendered_at) - min(a.rendered_at)) FROM campaign_audio n "
        "JOIN audio_assets a ON a.hash = n.hash WHERE n.campaign_id = %s",
        (campaign,),
    ).fetchone()
    db.commit()
    return int(needed), (int(needed) / float(span) if span else float("nan"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="calls in each campaign (at most 10,000)")
    parser.add_argument("--cps", type=float, default=80.0, help="each campaign's own cap on calls/s")
    args = parser.parse_args()
    api, key = os.environ["SESPCL_API_URL"], os.environ["SESPCL_API_KEY"]
    run = uuid.uuid4().hex[:5]
    with psycopg.connect(os.environ["DATABASE_URL"]) as db:
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            fixed = await run_campaign(
                client, db, text=FIXED, row=lambda i, to: {"to": to}, count=args.calls, cps=args.cps
            )
            started = time.perf_counter()
            personal = await run_campaign(
                client,
                db,
                text=PERSONAL,
                row=lambda i, to: personal_row(i, to, run),
                count=args.calls,
                cps=args.cps,
            )
            personal_wall = time.perf_counter() - started
        needed, rendered_per_s = renders_of(db, personal[3])
    print(
        f"\npersonal vs fixed campaign, {args.calls:,} calls each, cps {args.cps:g}, "
        "uploaded paused then resumed"
    )
    print(f"{'campaign':10} {'first answer after resume':>26} {'answered/s':>11} {'answered':>9}")
    for name, (first_s, rate, answered, _) in (("fixed", fixed), ("personal", personal)):
        print(f"{name:10} {first_s:>24.1f} s {rate:>11.1f} {answered:>9,}")
    print(f"ratio personal/fixed answered/s: {personal[1] / fixed[1]:.2f} (target >= 0.9)")
    print(
        f"personal campaign: {needed:,} renders needed, rendered by the stack's workers at "
        f"{rendered_per_s:,.0f} prompts/s while it dialed ({personal_wall:.0f} s in all)"
    )


if __name__ == "__main__":
    asyncio.run(main())
