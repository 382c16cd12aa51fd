"""Idempotency keys of the bulk paths in PostgreSQL (table idempotent_requests).

A row is a claim while `answer_status` is NULL, then the answer. Keys live `ttl_s` from when
they were taken; each claim deletes a few expired rows, so the table needs no process of its own.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from orchestrator.persistence.db import Pool
from orchestrator.persistence.errors import raises_port_errors
from orchestrator.services.idempotency import Answer, Claim

SWEEP_BATCH = 100
"""Expired keys removed per claim: more than keys are taken, so the table stays bounded."""

_SWEEP = """
DELETE FROM idempotent_requests WHERE key IN (
    SELECT key FROM idempotent_requests
    WHERE taken_at < now() - %(ttl_s)s * interval '1 second'
    ORDER BY taken_at LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
"""

# Taken when new, expired, or a claim whose holder stopped beating; else left as it is.
_CLAIM = """
INSERT INTO idempotent_requests AS r (key, holder) VALUES (%(key)s, %(holder)s)
ON CONFLICT (key) DO UPDATE
    SET holder = excluded.holder, taken_at = now(), touched_at = now(), request_hash = NULL,
        answer_status = NULL, answer_body = NULL, answer_location = NULL, answered_at = NULL
    WHERE r.taken_at < now() - %(ttl_s)s * interval '1 second'
       OR (r.answer_status IS NULL AND r.touched_at < now() - %(stale_s)s * interval '1 second')
RETURNING r.holder
"""


def _claim_of(row: dict[str, Any]) -> Claim:
    if row["answer_status"] is None:
        return Claim()
    answer = Answer(row["answer_status"], row["answer_body"], row["answer_location"])
    return Claim(answer=answer, request_hash=row["request_hash"])


class IdempotencyKeyStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @raises_port_errors
    async def claim(self, key: str, holder: UUID, *, ttl_s: float, stale_after_s: float) -> Claim:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(_SWEEP, {"ttl_s": ttl_s, "batch": SWEEP_BATCH})
            cur = await conn.execute(
                _CLAIM, {"key": key, "holder": holder, "ttl_s": ttl_s, "stale_s": stale_after_s}
            )
            if await cur.fetchone() is not None:
                return Claim(holder=holder)
            cur = await conn.execute(
                "SELECT request_hash, answer_status, answer_body, answer_location "
                "FROM idempotent_requests WHERE key = %s",
                (key,),
            )
            row = await cur.fetchone()
            # Gone between the two statements (a release): it was in use a moment ago.
            return Claim() if row is None else _claim_of(row)

    @raises_port_errors
    async def touch(self, key: str, holder: UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE idempotent_requests SET touched_at = now() "
                "WHERE key = %s AND holder = %s AND answer_status IS NULL",
                (key, holder),
            )

    @raises_port_errors
    async def answer(self, key: str, holder: UUID, request_hash: str, answer: Answer) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                UPDATE idempotent_requests
                SET request_hash = %(hash)s, answer_status = %(status)s, answer_body = %(body)s,
                    answer_location = %(location)s, answered_at = now()
                WHERE key = %(key)s AND holder = %(holder)s AND answer_status IS NULL
                """,
                {
                    "key": key,
                    "holder": holder,
                    "hash": request_hash,
                    "status": answer.status,
                    "body": Jsonb(answer.body),
                    "location": answer.location,
                },
            )

    @raises_port_errors
    async def release(self, key: str, holder: UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM idempotent_requests WHERE key = %s AND holder = %s AND answer_status IS NULL",
                (key, holder),
            )
