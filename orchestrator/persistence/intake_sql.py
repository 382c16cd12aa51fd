"""The statements that move one chunk of an upload from its stage (`intake_stage`, a temporary
table of this session) into the campaign's calls and audio. A row with no two-way field of its
own stages none: its call takes the campaign's two-way defaults as parameters, so a million rows
of a two-way campaign cost what a million plain rows cost. Audio rows (line NULL) are the pieces,
replies and voicemail messages the calls play."""

from __future__ import annotations

STAGE_COLUMNS = (
    "line, to_number, from_number, trunk, tts_text, audio_hash, ring_timeout_s, time_zones, "
    "voice, own_two_way, interaction, extra_audio, status_callback, segments"
)

CREATE_STAGE = """
    CREATE TEMP TABLE IF NOT EXISTS intake_stage (
        line int, to_number text, from_number text, trunk text, tts_text text,
        audio_hash text, ring_timeout_s int, time_zones text, voice text,
        own_two_way boolean, interaction text, extra_audio text, status_callback text,
        segments text
    ) ON COMMIT DELETE ROWS
"""

# A failed asset asked for again is pending anew, for the render planner to take.
INSERT_AUDIO = """
    INSERT INTO audio_assets (hash, engine, voice, text)
    SELECT DISTINCT ON (audio_hash) audio_hash, %(engine)s, coalesce(voice, %(voice)s), tts_text
    FROM intake_stage WHERE line IS NULL ORDER BY audio_hash
    ON CONFLICT (hash) DO UPDATE SET status = 'pending', error = NULL, planned_at = NULL,
        failed_renders = 0
        WHERE audio_assets.status = 'failed'
"""

INSERT_CAMPAIGN_AUDIO = """
    INSERT INTO campaign_audio (campaign_id, hash)
    SELECT DISTINCT %(campaign)s::uuid, audio_hash FROM intake_stage WHERE line IS NULL
    ON CONFLICT DO NOTHING
"""

# created_at steps a microsecond per line so the campaign dials in upload order. A number the
# campaign already has is skipped; one on the do-not-call list is stored canceled, with the
# status event every final status has (only for the calls this statement inserted).
INSERT_CALLS = """
    WITH inserted AS (
        INSERT INTO calls (id, to_number, from_number, trunk, tts_text, tts_voice, audio_hash,
                           ring_timeout_s, campaign_id, created_at, updated_at, not_before,
                           expires_at, window_start, window_end, time_zones,
                           max_attempts, retry_on, retry_backoff_s, created_by,
                           interaction, extra_audio, status_callback, segments,
                           status, status_reason, ended_at)
        SELECT sespcl_uuid7(), s.to_number, s.from_number, s.trunk, s.tts_text, %(voice)s,
               s.audio_hash, s.ring_timeout_s, %(campaign)s,
               now() + s.line * interval '1 microsecond', now(),
               now() + s.line * interval '1 microsecond', %(expires_at)s, %(window_start)s,
               %(window_end)s, string_to_array(s.time_zones, ','),
               %(max_attempts)s, %(retry_on)s, %(retry_backoff_s)s, %(created_by)s,
               CASE WHEN s.own_two_way THEN s.interaction::jsonb ELSE %(interaction)s END,
               CASE WHEN s.own_two_way THEN string_to_array(s.extra_audio, ',')
                    ELSE %(extra_audio)s END,
               CASE WHEN s.own_two_way THEN s.status_callback::jsonb ELSE %(status_callback)s END,
               string_to_array(s.segments, ','),
               CASE WHEN d.number IS NULL THEN %(queued)s ELSE %(canceled)s END,
               CASE WHEN d.number IS NULL THEN NULL ELSE %(dnc_reason)s END,
               CASE WHEN d.number IS NULL THEN NULL ELSE now() END
        FROM intake_stage s LEFT JOIN dnc d ON d.number = s.to_number
        WHERE s.line IS NOT NULL
        ORDER BY s.line
        ON CONFLICT (campaign_id, to_number) WHERE campaign_id IS NOT NULL DO NOTHING
        RETURNING id, status, status_reason, ended_at
    ),
    blocked AS (
        INSERT INTO call_events (call_id, at, type, data)
        SELECT id, ended_at, 'status', jsonb_build_object('status', status, 'reason', status_reason)
        FROM inserted WHERE status = %(canceled)s
    )
    SELECT count(*) AS accepted FROM inserted
"""

EMPTY_STAGE = "TRUNCATE intake_stage"
