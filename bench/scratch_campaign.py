"""A large campaign of queued calls, made fast with SQL (generate_series) the way the bulk intake
stores one: ids from sespcl_uuid7(), created_at and not_before a microsecond apart in upload
order, one whole prompt for all (tts mode `whole`: each call plays its audio_hash alone). The
numbers are real-looking NANP numbers (+1 415 200-0000 on), valid for libphonenumber. Used by
bench/campaign_control.py and the cancel's integration test."""

from __future__ import annotations

from uuid import UUID

from orchestrator.domain.campaign import NewCampaign
from orchestrator.domain.segments import TtsMode
from orchestrator.persistence.campaigns import CampaignStore
from orchestrator.persistence.db import Pool

AUDIO_HASH = "c" * 64
PROMPT = "Power is back in your area."
VOICE = "en-us"
FIRST_NUMBER = 4152000000
"""+1 415 200-0000: numbers go up from here, one a call (8 million are valid)."""
CHUNK = 100_000
"""Calls inserted per statement: a million in ten commits, none holding a huge transaction."""


async def ensure_prompt(pool: Pool) -> None:
    """The campaign's one prompt, rendered (so a claim may dial its calls)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO audio_assets (hash, engine, voice, text, status, path, duration_ms) "
            "VALUES (%s, 'espeak', %s, %s, 'ready', '/tmp/scratch-campaign.ulaw', 1000) "
            "ON CONFLICT (hash) DO NOTHING",
            (AUDIO_HASH, VOICE, PROMPT),
        )


async def scratch_campaign(pool: Pool, calls: int, *, trunk: str, name: str = "scratch") -> UUID:
    """A new active campaign on `trunk` with `calls` queued calls; returns its id."""
    await ensure_prompt(pool)
    campaign = await CampaignStore(pool).create(
        NewCampaign(
            name=name,
            trunk=trunk,
            from_=None,
            template=PROMPT,
            voice=VOICE,
            ring_timeout_s=30,
            tts_mode=TtsMode.WHOLE,
        )
    )
    for start in range(0, calls, CHUNK):
        async with pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s,
                                   campaign_id, created_at, not_before)
                SELECT sespcl_uuid7(), '+' || (%(first)s + i)::text, %(trunk)s, %(prompt)s, %(voice)s,
                       %(hash)s, 30, %(campaign)s, now() + i * interval '1 microsecond',
                       now() + i * interval '1 microsecond'
                FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS i
                """,
                {
                    "first": FIRST_NUMBER,
                    "trunk": trunk,
                    "prompt": PROMPT,
                    "voice": VOICE,
                    "hash": AUDIO_HASH,
                    "campaign": campaign["id"],
                    "start": start,
                    "end": min(start + CHUNK, calls) - 1,
                },
            )
    async with pool.connection() as conn:
        await conn.execute("ANALYZE calls")
    return UUID(str(campaign["id"]))
