"""Render jobs: one per distinct audio (audio_assets row: a prompt, a reply, a voicemail message),
never one per call; or one for a batch of them (one SELECT, one UPDATE, one job's overhead)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
import structlog
from psycopg.rows import DictRow

from orchestrator.domain.audio import SpeechRequest
from orchestrator.speech import SpeechError, render_each
from workers.context import current

log = structlog.get_logger(__name__)

RENDER_TRIES = 3
"""A render that fails for a reason that may pass is tried this often before the calls waiting
on the prompt are failed. Between tries the asset stays pending; the dispatcher's sweep for lost
renders enqueues it again once the finished job has expired (about a minute)."""

CORRUPT = "corrupt"
"""A batch's outcome for a row whose text does not hash to its name (the single job raises)."""


@dataclass(frozen=True)
class _Rendered:
    audio_hash: str
    path: str
    duration_ms: int
    size_bytes: int


def render_audio(audio_hash: str) -> str:
    outcome = render_audio_batch([audio_hash])[audio_hash]
    if outcome == CORRUPT:
        # The hash is the file's name; a mismatch would play the wrong words.
        raise RuntimeError(f"audio asset {audio_hash} does not hash to itself")
    return outcome


def render_audio_batch(audio_hashes: list[str]) -> dict[str, str]:
    """Each asset's outcome: 'ready', 'pending' (a failure that may pass: tried again later),
    'failed', 'unknown' (no row) or 'corrupt'. One asset's failure is its own: the others are
    rendered and recorded all the same."""
    ctx = current()
    wanted = list(dict.fromkeys(audio_hashes))
    with ctx.db.transaction():
        rows = ctx.db.execute(
            "SELECT hash, engine, voice, text, status FROM audio_assets WHERE hash = ANY(%s)", (wanted,)
        ).fetchall()
    found = {str(row["hash"]): row for row in rows}
    outcomes: dict[str, str] = {}
    todo: list[tuple[str, SpeechRequest]] = []
    for audio_hash in wanted:
        planned = _plan(audio_hash, found.get(audio_hash))
        if isinstance(planned, str):
            outcomes[audio_hash] = planned
        else:
            todo.append((audio_hash, planned))
    rendered: list[_Rendered] = []
    try:
        results = render_each((request for _, request in todo), ctx.settings.audio_dir)
        started = time.perf_counter()
        for (audio_hash, _), result in zip(todo, results):
            finished = time.perf_counter()  # a prompt's time: from the previous one's end to its own
            ctx.observe_render(finished - started)
            started = finished
            if isinstance(result, SpeechError):
                outcomes[audio_hash] = _record_failure(ctx.db, audio_hash, result)
                continue
            path, duration_ms = result
            outcomes[audio_hash] = "ready"
            rendered.append(
                _Rendered(audio_hash, str(path.with_suffix("")), duration_ms, path.stat().st_size)
            )
            log.info("render.done", audio_hash=audio_hash, duration_ms=duration_ms)
    finally:
        # Even when a bug stops the batch: the files written so far are recorded.
        _mark_ready(ctx.db, rendered)
    log.info("render.batch_done", assets=len(wanted), rendered=len(rendered))
    return {audio_hash: outcomes[audio_hash] for audio_hash in wanted}


def _plan(audio_hash: str, row: DictRow | None) -> str | SpeechRequest:
    """The request to render, or the outcome already known without rendering."""
    if row is None:
        log.warning("render.unknown_asset", audio_hash=audio_hash)
        return "unknown"
    if row["status"] == "ready":
        return "ready"
    request = SpeechRequest(text=str(row["text"]), voice=str(row["voice"]), engine=str(row["engine"]))
    if request.key() != audio_hash:
        log.error("render.hash_mismatch", audio_hash=audio_hash)
        return CORRUPT
    return request


def _mark_ready(db: psycopg.Connection[DictRow], rendered: list[_Rendered]) -> None:
    if not rendered:
        return
    with db.transaction():
        db.execute(
            """
            UPDATE audio_assets a SET status = 'ready', path = r.path, duration_ms = r.duration_ms,
                   size_bytes = r.size_bytes, render_count = a.render_count + 1, rendered_at = now(),
                   error = NULL
            FROM unnest(%s::text[], %s::text[], %s::int[], %s::bigint[])
                 AS r(hash, path, duration_ms, size_bytes)
            WHERE a.hash = r.hash
            """,
            (
                [r.audio_hash for r in rendered],
                [r.path for r in rendered],
                [r.duration_ms for r in rendered],
                [r.size_bytes for r in rendered],
            ),
        )


def _record_failure(db: psycopg.Connection[DictRow], audio_hash: str, exc: SpeechError) -> str:
    bound = log.bind(audio_hash=audio_hash)
    with db.transaction():
        tried = db.execute(
            "UPDATE audio_assets SET failed_renders = failed_renders + 1, error = %s WHERE hash = %s "
            "RETURNING failed_renders",
            (str(exc), audio_hash),
        ).fetchone()
    if not exc.permanent and tried is not None and int(tried["failed_renders"]) < RENDER_TRIES:
        bound.warning("render.try_again_later", error=str(exc), failed_renders=tried["failed_renders"])
        return "pending"
    with db.transaction():
        db.execute("UPDATE audio_assets SET status = 'failed' WHERE hash = %s", (audio_hash,))
        # Calls waiting on this audio cannot be dialed: finish them with the reason, whether
        # it is their prompt, one of its segments or one of their extra audio (a reply, a
        # voicemail message).
        db.execute(
            """
            WITH failed AS (
                UPDATE calls SET status = 'failed', status_reason = %(reason)s, ended_at = now(),
                       updated_at = now()
                WHERE (audio_hash = %(hash)s OR extra_audio @> ARRAY[%(hash)s]::text[]
                       OR segments @> ARRAY[%(hash)s]::text[])
                  AND status = 'queued'
                RETURNING id
            )
            INSERT INTO call_events (call_id, at, type, data)
            SELECT id, now(), 'status', jsonb_build_object('status', 'failed', 'reason', %(reason)s::text)
            FROM failed
            """,
            {"reason": f"speech rendering failed: {exc}", "hash": audio_hash},
        )
    bound.error("render.failed", error=str(exc))
    return "failed"
