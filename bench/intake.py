"""`make bench-intake`: a million rows into a running stack, against bare COPYs of the same rows.

Three campaigns: a fixed text with three greetings (NDJSON and CSV), a personal reminder with
5,000 distinct names and a `{{code|digits}}` per row, and one whose every row has a name of its
own. Prints rows/s accepted, wall time, the renders each needs, the API process's peak RSS, the
same rows COPYed straight into a table shaped like `calls` (same indexes) and into a minimal
table (uuid key + jsonb) in the same PostgreSQL, the ratios, and EXPLAIN ANALYZE for claiming,
counting and paging at this size. The benchmark's campaigns are paused while loaded and deleted
afterwards: nothing is dialed and nothing is rendered.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

GREETINGS = ("Good morning", "Good afternoon", "Good evening")
TEMPLATE = "{{greeting}}. Power in your area will be off tonight from midnight to four."
REMINDER = "Hello {{name}}, your verification code is {{code|digits}}. It expires in ten minutes."
FIRST = ("Margaret", "Olusegun", "Hiroshi", "Siobhán", "Aarav", "Lucía", "Mateus", "Ingrid", "Kwame", "Yuki")
LAST = ("Okafor", "Tanaka", "García", "Nguyen", "Kowalski", "Haddad", "Silva", "Murphy", "Dubois", "Rossi")


def person(i: int, distinct: int) -> str:
    """One of `distinct` realistic names (first, middle initial, last)."""
    k = i % distinct
    return f"{FIRST[k % 10]} {chr(65 + k // 100 % 26)}. {LAST[k // 10 % 10]}-{k // 2600}"


def personal_ndjson(rows: int, distinct: int) -> Iterator[bytes]:
    batch: list[str] = []
    for i in range(rows):
        code = f"{(i * 7919 + 13) % 1_000_000:06d}"
        batch.append(
            json.dumps({"to": number(i), "name": person(i, distinct), "code": code}, ensure_ascii=False)
        )
        if len(batch) == 5000:
            yield ("\n".join(batch) + "\n").encode()
            batch.clear()
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def number(i: int) -> str:
    # Valid NANP numbers: area code 415, exchange 2xx-9xx, line 0000-9999.
    return f"+1415{200 + (i // 10000) % 800:03d}{i % 10000:04d}"


def ndjson(rows: int) -> Iterator[bytes]:
    batch: list[str] = []
    for i in range(rows):
        batch.append(json.dumps({"to": number(i), "greeting": GREETINGS[i % 3]}))
        if len(batch) == 5000:
            yield ("\n".join(batch) + "\n").encode()
            batch.clear()
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def csv_rows(rows: int) -> Iterator[bytes]:
    yield b"to,greeting\n"
    batch: list[str] = []
    for i in range(rows):
        batch.append(f"{number(i)},{GREETINGS[i % 3]}")
        if len(batch) == 5000:
            yield ("\n".join(batch) + "\n").encode()
            batch.clear()
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def api_pid() -> int:
    out = subprocess.run(["pgrep", "-f", "bin/sespcl serve"], capture_output=True, text=True).stdout.split()
    for pid in out:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if cmd and b"python" in cmd[0]:
            return int(pid)
    raise SystemExit("the API process (sespcl serve) is not running: make up first")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop_flag = pid, 0, threading.Event()

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak_kb = max(self.peak_kb, self.rss_kb())
            time.sleep(0.05)


SCENARIOS = {
    "ndjson": "fixed text, three greetings, NDJSON",
    "csv": "fixed text, three greetings, CSV",
    "names-5k": "5,000 names + {{code|digits}}",
    "names-all": "every row its own name + code",
}


def upload(client: httpx.Client, rows: int, kind: str) -> tuple[str, dict[str, object], float]:
    text = TEMPLATE if kind in ("ndjson", "csv") else REMINDER
    created = client.post(
        "/v1/campaigns",
        json={"name": f"bench-{kind}-{uuid.uuid4().hex[:6]}", "defaults": {"tts": {"text": text}}},
    )
    created.raise_for_status()
    campaign = created.json()["id"]
    client.post(f"/v1/campaigns/{campaign}/pause").raise_for_status()
    body: Iterator[bytes]
    if kind == "csv":
        body, ctype = csv_rows(rows), "text/csv"
    elif kind == "ndjson":
        body, ctype = ndjson(rows), "application/x-ndjson"
    else:
        body, ctype = personal_ndjson(rows, 5000 if kind == "names-5k" else rows), "application/x-ndjson"
    started = time.perf_counter()
    response = client.post(f"/v1/campaigns/{campaign}/calls", content=body, headers={"Content-Type": ctype})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return campaign, response.json(), elapsed


def bare_copy(db: psycopg.Connection, rows: int, campaign: str) -> float:
    """The same rows, COPYed into a table with calls' columns and indexes, nothing else."""
    db.execute("DROP TABLE IF EXISTS bench_bare")
    db.execute("CREATE UNLOGGED TABLE bench_bare (LIKE calls INCLUDING ALL)")
    db.execute("ALTER TABLE bench_bare SET LOGGED")
    hashes = {
        g: db.execute(
            "SELECT audio_hash FROM calls WHERE campaign_id = %s AND tts_text = %s LIMIT 1",
            (campaign, TEMPLATE.replace("{{greeting}}", g)),
        ).fetchone()[0]
        for g in GREETINGS
    }
    db.commit()
    started = time.perf_counter()
    with (
        db.cursor() as cur,
        cur.copy(
            "COPY bench_bare (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s,"
            " campaign_id)"
            " FROM STDIN"
        ) as copy,
    ):
        for i in range(rows):
            g = GREETINGS[i % 3]
            copy.write_row(
                (
                    uuid.uuid4(),
                    number(i),
                    "demo",
                    TEMPLATE.replace("{{greeting}}", g),
                    "en-us",
                    hashes[g],
                    30,
                    campaign,
                )
            )
    db.commit()
    elapsed = time.perf_counter() - started
    db.execute("DROP TABLE bench_bare")
    db.commit()
    return elapsed


def minimal_copy(db: psycopg.Connection, rows: int) -> float:
    """The floor the issue names: the personal rows COPYed as a uuid key and a jsonb, nothing else."""
    db.execute("DROP TABLE IF EXISTS bench_minimal")
    db.execute("CREATE TABLE bench_minimal (id uuid PRIMARY KEY, row jsonb NOT NULL)")
    db.commit()
    started = time.perf_counter()
    with db.cursor() as cur, cur.copy("COPY bench_minimal (id, row) FROM STDIN") as copy:
        for i in range(rows):
            code = f"{(i * 7919 + 13) % 1_000_000:06d}"
            row = json.dumps({"to": number(i), "name": person(i, rows), "code": code}, ensure_ascii=False)
            copy.write_row((uuid.uuid4(), row))
    db.commit()
    elapsed = time.perf_counter() - started
    db.execute("DROP TABLE bench_minimal")
    db.commit()
    return elapsed


def renders_needed(db: psycopg.Connection, campaign: str) -> int:
    return int(
        db.execute("SELECT count(*) FROM campaign_audio WHERE campaign_id = %s", (campaign,)).fetchone()[0]
    )


def explain(db: psycopg.Connection, title: str, sql: str, params: tuple[object, ...]) -> None:
    plan = db.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql, params).fetchall()
    print(f"\n-- {title}")
    for (line,) in plan:
        print("   " + line)
    db.rollback()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's calls afterwards")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}"
    )
    args = parser.parse_args()
    api, key, dsn = os.environ["SESPCL_API_URL"], os.environ["SESPCL_API_KEY"], os.environ["DATABASE_URL"]
    client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=600)
    db = psycopg.connect(dsn)
    sampler = RssSampler(api_pid())
    rss_before = sampler.rss_kb()
    sampler.start()
    campaigns = []
    try:
        results = {}
        for kind in args.scenarios.split(","):
            campaign, report, elapsed = upload(client, args.rows, kind)
            campaigns.append(campaign)
            results[kind] = (report, elapsed)
            needed = renders_needed(db, campaign)
            print(
                f"{kind:9} {SCENARIOS[kind]:36} {args.rows:>9,} rows  accepted {report['accepted']:>9,}  "
                f"rejected {report['rejected']}  {elapsed:6.1f} s  "
                f"{report['accepted'] / elapsed:>9,.0f} rows/s  renders needed {needed:,}",
                flush=True,
            )
            db.rollback()
        sampler.stop_flag.set()
        sampler.join()
        print(
            f"API RSS: {rss_before / 1024:.0f} MB before, peak {sampler.peak_kb / 1024:.0f} MB during uploads"
        )
        minimal = minimal_copy(db, args.rows)
        print(
            f"minimal COPY (uuid key + jsonb) of the personal rows: {minimal:.1f} s  "
            f"{args.rows / minimal:,.0f} rows/s"
        )
        fixed = campaigns[list(results).index("ndjson")] if "ndjson" in results else None
        bare = bare_copy(db, args.rows, fixed) if fixed is not None else None
        if bare is not None:
            print(
                f"bare COPY of the fixed rows into a calls-shaped table: {bare:.1f} s  "
                f"{args.rows / bare:,.0f} rows/s"
            )
        for kind, (_, elapsed) in results.items():
            print(
                f"ratio {kind:9} / minimal COPY: {minimal / elapsed:.2f}"
                + (f"   / calls-shaped COPY: {bare / elapsed:.2f}" if bare is not None else "")
            )
        total = db.execute("SELECT count(*) FROM calls").fetchone()[0]
        print(f"\ncalls in the table now: {total:,}")
        # What autovacuum does on its own a little later: statistics and the visibility map.
        started = time.perf_counter()
        db.commit()
        db.autocommit = True
        db.execute("VACUUM (ANALYZE) calls")
        db.autocommit = False
        print(f"VACUUM (ANALYZE) calls: {time.perf_counter() - started:.1f} s")
        deep = db.execute(
            "SELECT created_at, id FROM calls WHERE campaign_id = %s "
            "ORDER BY created_at, id OFFSET %s LIMIT 1",
            (campaigns[0], args.rows * 9 // 10),
        ).fetchone()
        explain(
            db,
            "claim, 1: the campaigns queued on a trunk (skip scan of calls_dialable_by_campaign)",
            "WITH RECURSIVE h AS ((SELECT campaign_id FROM calls WHERE status = 'queued' AND trunk = %s "
            "AND campaign_id IS NOT NULL ORDER BY campaign_id LIMIT 1) UNION ALL "
            "SELECT (SELECT c.campaign_id FROM calls c WHERE c.status = 'queued' AND c.trunk = %s "
            "AND c.campaign_id > h.campaign_id ORDER BY c.campaign_id LIMIT 1) "
            "FROM h WHERE h.campaign_id IS NOT NULL) SELECT * FROM h",
            ("demo", "demo"),
        )
        explain(
            db,
            "claim, 2: a campaign's next dialable calls on the trunk",
            "SELECT c.id FROM calls c JOIN audio_assets a ON a.hash = c.audio_hash "
            "WHERE c.status = 'queued' AND c.trunk = %s AND c.campaign_id = %s AND c.not_before <= now() "
            "AND a.status = 'ready' ORDER BY c.not_before, c.id LIMIT 50 FOR UPDATE OF c SKIP LOCKED",
            ("demo", campaigns[0]),
        )
        explain(
            db,
            "a campaign's calls by status (the counts the triggers keep, not a count of calls)",
            "SELECT status, sum(n) FROM call_status_counts WHERE campaign_id = %s GROUP BY status",
            (campaigns[0],),
        )
        explain(
            db,
            "a page of /v1/calls?campaign= (keyset cursor 90% deep into the campaign)",
            "SELECT * FROM calls WHERE campaign_id = %s AND (created_at, id) > (%s, %s) "
            "ORDER BY created_at, id LIMIT 101",
            (campaigns[0], deep[0], deep[1]),
        )
    finally:
        sampler.stop_flag.set()
        if not args.keep and campaigns:
            started = time.perf_counter()
            db.rollback()
            db.execute("DELETE FROM calls WHERE campaign_id = ANY(%s) AND status = 'queued'", (campaigns,))
            db.execute("DELETE FROM campaign_audio WHERE campaign_id = ANY(%s)", (campaigns,))
            db.execute("DELETE FROM campaigns WHERE id = ANY(%s)", (campaigns,))
            db.commit()
            # Two million rows gone leave the indexes at their high-water size: the planner then
            # prices the claim's index scans as if they read it all, and picks sequential scans
            # of calls on every poll. Vacuum, and rebuild the claim's index (queued calls only).
            db.autocommit = True
            db.execute("VACUUM (ANALYZE) calls")
            db.execute("REINDEX INDEX CONCURRENTLY calls_dialable_by_campaign")
            db.autocommit = False
            print(f"\nremoved the benchmark's calls ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
