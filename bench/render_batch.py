"""bench/render.py's batch-job path: workers.tts.render_audio_batch as a worker runs it (logging
as JSON, here to /dev/null), against PostgreSQL, with the database backend's CPU counted too.
Give it a database of its own: its asset rows are made pending for the run, then deleted."""

from __future__ import annotations

import os
import sys
import time
from functools import cache
from pathlib import Path

from bench.render import Run, _cpu_s
from orchestrator.config import Settings
from orchestrator.domain.audio import SpeechRequest
from orchestrator.logs import configure_logging
from orchestrator.persistence.db import connect
from workers import context
from workers.tts import render_audio_batch

BATCH = 200
VOICE = "en-us"


def _backend_cpu_s(pid: int) -> float:
    """The PostgreSQL backend's CPU time (it runs on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@cache
def _logs_as_a_worker() -> None:
    """JSON lines, as a worker writes them, into /dev/null (kept open: the loggers hold it)."""
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
    try:
        configure_logging("info", json=True)
    finally:
        sys.stderr = stderr


def batch_job(database_url: str, texts: list[str], audio_dir: Path) -> Run:
    keys = [SpeechRequest(text=text, voice=VOICE).key() for text in texts]
    db = connect(database_url, "sespcl-bench-render")
    with db.transaction():
        db.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text, created_at) "
            "SELECT k, 'espeak-ng', %s, t, now() + interval '1 hour' "
            "FROM unnest(%s::text[], %s::text[]) AS u(k, t) "
            "ON CONFLICT (hash) DO UPDATE SET status = 'pending', render_count = 0",
            (VOICE, keys, texts),
        )
    context.install(context.WorkerContext(settings=Settings(audio_dir=audio_dir), db=db))
    row = db.execute("SELECT pg_backend_pid() AS pid").fetchone()
    db.commit()
    assert row is not None
    backend = int(row["pid"])
    _logs_as_a_worker()
    cpu, server, wall = _cpu_s(), _backend_cpu_s(backend), time.perf_counter()
    for start in range(0, len(keys), BATCH):
        render_audio_batch(keys[start : start + BATCH])
    cpu, wall = _cpu_s() - cpu + _backend_cpu_s(backend) - server, time.perf_counter() - wall
    with db.transaction():
        rows = db.execute(
            "SELECT count(*) AS ready, coalesce(sum(duration_ms), 0) AS ms FROM audio_assets "
            "WHERE hash = ANY(%s) AND status = 'ready'",
            (keys,),
        ).fetchone()
        db.execute("DELETE FROM audio_assets WHERE hash = ANY(%s)", (keys,))
    db.close()
    assert rows is not None and rows["ready"] == len(keys), rows
    return Run(
        f"batch job ({BATCH} a job; + PostgreSQL backend CPU)", len(keys), cpu, wall, rows["ms"] / 1000
    )
