"""What this machine does without the orchestrator, in the same run as `make bench-farm`:

- the simulated farm driven by a bare loop: one AMI connection per node, Originates written as
  fast as each node has room, events only counted (no parsing, no database): the farm's own
  answered calls/s, which the orchestrator can at best reach;
- PostgreSQL driven by a bare loop on one session: per call, the rows a call costs at least (its
  attempt inserted, its status written three times, a dozen events COPYed), 200 calls a
  transaction, in tables of their own: the database's own calls/s for that work.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg

from orchestrator.asterisk.ami import originate_action
from orchestrator.domain.dialing import OriginateRequest

HANGUP = b"Event: Hangup\r\n"
FRAME_END = b"\r\n\r\n"
EVENTS_PER_CALL = 12
"""About what a simple answered call stores in call_events (its node's events and ours)."""
PG_BATCH = 200


def _originate(trunk: str, number: int) -> bytes:
    request = OriginateRequest(
        attempt_id=str(uuid.uuid4()), to=f"+1212{200 + number % 800:03d}{number % 10000:04d}", trunk=trunk,
        caller_id="+14155550100", audio_path="/var/lib/sespcl/audio/bare", call_id=str(uuid.uuid4()),
        timeout_ms=30000, max_call_s=600,
    )  # fmt: skip
    action = originate_action(request)
    lines = [(k, item) for k, v in action.items() for item in (v if isinstance(v, list) else [v])]
    return "".join(f"{k}: {v}\r\n" for k, v in lines).encode() + b"\r\n"


class BareNode:
    """One node, kept as full as its capacity allows."""

    def __init__(self, address: str, secret: str, capacity: int, trunk: str) -> None:
        self._address, self._secret, self._capacity, self._trunk = address, secret, capacity, trunk
        self.sent = 0
        self.ended = 0

    async def run(self, until: float) -> None:
        reader, writer = await asyncio.open_connection(self._address, 5038)
        writer.write(f"Action: Login\r\nUsername: sespcl\r\nSecret: {self._secret}\r\n\r\n".encode())
        pending = b""
        while time.monotonic() < until:
            room = self._capacity - (self.sent - self.ended)
            if room > 0:
                writer.write(b"".join(_originate(self._trunk, self.sent + i) for i in range(room)))
                self.sent += room
            try:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 0.2)
            except TimeoutError:
                continue
            if not chunk:
                break
            whole, _, pending = (pending + chunk).rpartition(FRAME_END)
            self.ended += whole.count(HANGUP)
        writer.close()


async def bare_ami_loop(
    addresses: list[str], secret: str, capacity: int, trunk: str, seconds: float, warm_s: float
) -> float:
    """Ended calls a second over the last `seconds - warm_s` of a run of `seconds`."""
    nodes = [BareNode(address, secret, capacity, trunk) for address in addresses]
    started = time.monotonic()
    runs = asyncio.gather(*(node.run(started + seconds) for node in nodes))
    await asyncio.sleep(warm_s)
    ended_before, counted_from = sum(n.ended for n in nodes), time.monotonic()
    await runs
    return (sum(n.ended for n in nodes) - ended_before) / (time.monotonic() - counted_from)


def bare_pg_loop(database_url: str, calls: int) -> float:
    """Calls a second that one session stores, with the least rows a call costs."""
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bare_calls, bare_attempts, bare_events")
        db.execute(
            "CREATE TABLE bare_calls (id uuid PRIMARY KEY, status text NOT NULL, updated_at timestamptz)"
        )
        db.execute("CREATE TABLE bare_attempts (id uuid PRIMARY KEY, call_id uuid, started_at timestamptz)")
        db.execute(
            "CREATE TABLE bare_events "
            "(id bigserial PRIMARY KEY, call_id uuid, at timestamptz, type text, data jsonb)"
        )
        db.execute(
            "INSERT INTO bare_calls SELECT gen_random_uuid(), 'queued', now() FROM generate_series(1, %s)",
            (calls,),
        )
        ids = [row[0] for row in db.execute("SELECT id FROM bare_calls")]
        started = time.perf_counter()
        for first in range(0, len(ids), PG_BATCH):
            _store_batch(db, ids[first : first + PG_BATCH])
        elapsed = time.perf_counter() - started
        db.execute("DROP TABLE bare_calls, bare_attempts, bare_events")
    return len(ids) / elapsed


def _store_batch(db: psycopg.Connection, batch: list[uuid.UUID]) -> None:
    """A batch's claim, answer and end, each its own transaction as the dispatcher's are; and
    its events, as the worker stores them (COPY)."""
    with db.transaction():
        db.execute(
            "UPDATE bare_calls SET status = 'initiated', updated_at = now() WHERE id = ANY(%s)", (batch,)
        )
        db.execute(
            "INSERT INTO bare_attempts SELECT gen_random_uuid(), c, now() FROM unnest(%s::uuid[]) AS c",
            (batch,),
        )
    for status in ("in-progress", "completed"):
        with db.transaction():
            db.execute(
                "UPDATE bare_calls SET status = %s, updated_at = now() WHERE id = ANY(%s)", (status, batch)
            )
    with db.transaction(), db.cursor().copy("COPY bare_events (call_id, at, type, data) FROM STDIN") as copy:
        for call in batch:
            for n in range(EVENTS_PER_CALL):
                copy.write_row((call, "2026-12-07T00:00:00+00", f"ami.Event{n}", '{"Uniqueid": "x"}'))
