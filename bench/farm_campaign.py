"""One measured campaign of `make bench-farm`: N calls uploaded through the API (bulk intake),
dialed on the simulated farm, followed to their final statuses, and read back from PostgreSQL:
answered calls a second over the steady part of the run, accepted → final, events stored."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import psycopg

FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
AREAS = ("212", "646", "415", "312", "617", "713")
EXCHANGES = [e for e in range(201, 1000) if e % 100 != 11 and e not in (555, 976)]
UPLOAD_ROWS = 50_000
"""Rows a bulk upload carries (one transaction each)."""
STEADY = (0.1, 0.9)
"""The steady part of a run: between the 10th and the 90th percentile of its calls' ends
(the ramp of the nodes' pacers and the last stragglers left out)."""


def number(i: int) -> str:
    """The i-th of distinct valid NANP numbers (a campaign takes a number once)."""
    subscriber, rest = i % 10_000, i // 10_000
    exchange, area = EXCHANGES[rest % len(EXCHANGES)], AREAS[rest // len(EXCHANGES) % len(AREAS)]
    return f"+1{area}{exchange:03d}{subscriber:04d}"


def _rows(first: int, count: int) -> Iterator[bytes]:
    for i in range(first, first + count):
        yield f'{{"to": "{number(i)}"}}\n'.encode()


async def upload(client: httpx.AsyncClient, trunk: str, text: str, calls: int) -> tuple[str, float]:
    """A campaign of `calls` calls, uploaded in bulk: its id and the upload's seconds."""
    made = await client.post(
        "/v1/campaigns",
        json={"name": f"farm-{uuid.uuid4().hex[:8]}", "defaults": {"trunk": trunk, "tts": {"text": text}}},
    )
    assert made.status_code == 201, made.text
    campaign = str(made.json()["id"])
    started = time.perf_counter()
    for first in range(0, calls, UPLOAD_ROWS):
        count = min(UPLOAD_ROWS, calls - first)
        reply = await client.post(
            f"/v1/campaigns/{campaign}/calls",
            content=b"".join(_rows(first, count)),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert reply.status_code in (200, 201, 202) and reply.json()["accepted"] == count, reply.text
    return campaign, time.perf_counter() - started


async def wait_final(
    client: httpx.AsyncClient, campaign: str, calls: int, timeout_s: float
) -> dict[str, int]:
    """Until every call of the campaign has a final status (the campaign's kept counts)."""
    deadline = time.monotonic() + timeout_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = (await client.get(f"/v1/campaigns/{campaign}")).json().get("counts") or {}
        if sum(counts.get(status, 0) for status in FINAL) >= calls:
            return counts
        await asyncio.sleep(1.0)
    raise SystemExit(f"campaign {campaign}: not final within {timeout_s:.0f} s: {counts}")


def wait_events_stored(db: psycopg.Connection, quiet_s: float = 3.0) -> None:
    """Until no event has been stored for `quiet_s` (the workers have caught up)."""
    last, since = None, time.monotonic()
    while time.monotonic() - since < quiet_s:
        row = db.execute("SELECT max(id) FROM call_events").fetchone()
        db.commit()
        if row != last:
            last, since = row, time.monotonic()
        time.sleep(0.5)


@dataclass(frozen=True)
class Outcome:
    answered: int
    steady_per_s: float
    """Answered calls a second over the steady part."""
    accepted_to_final_s: float
    """The first call accepted → the last one final."""
    events: int
    """Events stored for the campaign's calls."""
    events_per_s: float
    """Events stored a second over the steady part."""
    statuses: dict[str, int]


def outcome(db: psycopg.Connection, campaign: str) -> Outcome:
    ends = [
        row[0]
        for row in db.execute(
            "SELECT ended_at FROM calls WHERE campaign_id = %s AND status = 'completed' ORDER BY ended_at",
            (campaign,),
        )
    ]
    first_accepted, last_final = db.execute(
        "SELECT min(created_at), max(coalesce(ended_at, updated_at)) FROM calls WHERE campaign_id = %s",
        (campaign,),
    ).fetchone() or (None, None)
    statuses: dict[str, int] = dict(
        db.execute(
            "SELECT status, count(*) FROM calls WHERE campaign_id = %s GROUP BY status", (campaign,)
        ).fetchall()
    )
    low, high = steady_window(ends)
    events = db.execute(
        "SELECT count(*) FROM call_events e JOIN calls c ON c.id = e.call_id WHERE c.campaign_id = %s",
        (campaign,),
    ).fetchone()
    in_window = db.execute(
        "SELECT count(*) FROM call_events WHERE at BETWEEN %s AND %s", (low, high)
    ).fetchone()
    db.commit()
    span = (high - low).total_seconds() if low and high else 0.0
    steady = int(len(ends) * (STEADY[1] - STEADY[0]))
    return Outcome(
        answered=len(ends),
        steady_per_s=steady / span if span else 0.0,
        accepted_to_final_s=(last_final - first_accepted).total_seconds() if first_accepted else 0.0,
        events=int(events[0]) if events else 0,
        events_per_s=int(in_window[0]) / span if in_window and span else 0.0,
        statuses=statuses,
    )


def steady_window(ends: list[datetime]) -> tuple[datetime | None, datetime | None]:
    if len(ends) < 10:
        return None, None
    return ends[int(len(ends) * STEADY[0])], ends[int(len(ends) * STEADY[1]) - 1]
