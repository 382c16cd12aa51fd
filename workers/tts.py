"""Render job: one per distinct audio (audio_assets row: a prompt, a reply, a voicemail message),
never one per call."""

from __future__ import annotations

import structlog

from orchestrator.domain.audio import SpeechRequest
from orchestrator.speech import SpeechError, render
from workers.context import current

log = structlog.get_logger(__name__)

RENDER_TRIES = 3
"""A render that fails for a reason that may pass is tried this often before the calls waiting
on the prompt are failed. Between tries the asset stays pending; the dispatcher's sweep for lost
renders enqueues it again once the finished job has expired (about a minute)."""


def render_audio(audio_hash: str) -> str:
    ctx = current()
    db = ctx.db
    with db.transaction():
        row = db.execute(
            "SELECT hash, engine, voice, text, status FROM audio_assets WHERE hash = %s",
            (audio_hash,),
        ).fetchone()
    bound = log.bind(audio_hash=audio_hash)
    if row is None:
        bound.warning("render.unknown_asset")
        return "unknown"
    if row["status"] == "ready":
        return "ready"
    request = SpeechRequest(text=str(row["text"]), voice=str(row["voice"]), engine=str(row["engine"]))
    if request.key() != audio_hash:
        # The hash is the file's name; a mismatch would play the wrong words.
        raise RuntimeError(f"audio asset {audio_hash} does not hash to itself")
    try:
        path, duration_ms = render(request, ctx.settings.audio_dir)
    except SpeechError as exc:
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
            # it is their prompt or one of their extra audio (a reply, a voicemail message).
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
    with db.transaction():
        db.execute(
            """
            UPDATE audio_assets SET status = 'ready', path = %s, duration_ms = %s, size_bytes = %s,
                   render_count = render_count + 1, rendered_at = now(), error = NULL
            WHERE hash = %s
            """,
            (str(path.with_suffix("")), duration_ms, path.stat().st_size, audio_hash),
        )
    bound.info("render.done", duration_ms=duration_ms)
    return "ready"
