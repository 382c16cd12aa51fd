"""The webhook outbox in PostgreSQL: the sender's claims and settlements (`WebhookOutbox`), and
a call's deliveries with their tries for the API (`WebhookLogStore`). Rows are written by the
triggers on `calls` (schema.sql), never here."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from orchestrator.domain.webhook_delivery import OutboxDelivery, Settlement, Verdict
from orchestrator.persistence.db import Pool
from orchestrator.persistence.errors import raises_port_errors

# Only the oldest pending event of each call is due, so a call's events go out in order and a
# call whose earlier event waits for its retry waits with it. SKIP LOCKED: several senders never
# take the same row; the lease keeps it theirs after the commit, until they settle it or die.
CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_try_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now())
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                      WHERE e.call_id = d.call_id AND e.status = 'pending' AND e.seq < d.seq)
    ORDER BY d.next_try_at
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries w SET leased_until = now() + %(lease_s)s * interval '1 second'
FROM due WHERE w.id = due.id
RETURNING w.id, w.call_id, w.url, w.payload::text AS body, w.tries, w.created_at,
          EXISTS (SELECT 1 FROM webhook_stopped_urls s WHERE s.url = w.url) AS stopped
"""

# A settlement applies only to a row still pending: a sender whose lease ran out while its try
# hung must not undo what another sender made of the row since.
SETTLE = """
WITH r AS (
    SELECT * FROM unnest(%(ids)s::text[], %(statuses)s::text[], %(next)s::timestamptz[],
                         %(tried)s::boolean[], %(ats)s::timestamptz[], %(codes)s::int[],
                         %(latencies)s::real[], %(errors)s::text[])
        AS r(id, status, next_try_at, tried, at, code, latency_ms, error)
), settled AS (
    UPDATE webhook_deliveries w
    SET status = r.status,
        tries = w.tries + r.tried::int,
        next_try_at = coalesce(r.next_try_at, w.next_try_at),
        leased_until = NULL,
        last_status_code = CASE WHEN r.tried THEN r.code ELSE w.last_status_code END,
        last_error = CASE WHEN r.tried OR r.error IS NOT NULL THEN r.error ELSE w.last_error END,
        delivered_at = CASE WHEN r.status = 'delivered' THEN r.at END,
        ended_at = CASE WHEN r.status <> 'pending' THEN now() END
    FROM r WHERE w.id = r.id AND w.status = 'pending'
    RETURNING w.id, w.tries
)
INSERT INTO webhook_tries (delivery_id, number, at, status_code, latency_ms, error)
SELECT r.id, settled.tries, r.at, r.code, r.latency_ms, r.error
FROM r JOIN settled USING (id) WHERE r.tried
ON CONFLICT DO NOTHING
"""

STOP_URLS = """
WITH stopped AS (
    INSERT INTO webhook_stopped_urls (url, delivery_id)
    SELECT * FROM unnest(%(urls)s::text[], %(ids)s::text[]) ON CONFLICT (url) DO NOTHING
)
UPDATE webhook_deliveries SET status = 'stopped', leased_until = NULL, ended_at = now(),
    last_error = 'the URL answered 410 Gone to an earlier delivery'
WHERE url = ANY(%(urls)s::text[]) AND status = 'pending'
  AND (leased_until IS NULL OR leased_until < now())
"""


class WebhookOutbox:
    """The sender's side of the outbox (role sespcl_webhooks)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @raises_port_errors
    async def claim(self, limit: int, lease_s: float) -> list[OutboxDelivery]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(CLAIM, {"limit": limit, "lease_s": lease_s})
            rows = await cur.fetchall()
        return [
            OutboxDelivery(
                id=row["id"],
                call_id=str(row["call_id"]),
                url=row["url"],
                body=row["body"].encode("utf-8"),
                tries=row["tries"],
                event_at=row["created_at"],
                stopped=row["stopped"],
            )
            for row in rows
        ]

    @raises_port_errors
    async def settle(self, settlements: list[Settlement]) -> None:
        """Every settlement in one transaction: the rows' new states, their tries, and the URLs
        that answered 410 stopped with whatever else was pending for them."""
        if not settlements:
            return
        tried = [s.result is not None for s in settlements]
        results = [s.result for s in settlements]
        params: dict[str, Any] = {
            "ids": [s.delivery_id for s in settlements],
            "statuses": [s.verdict.value for s in settlements],
            "next": [s.next_try_at for s in settlements],
            "tried": tried,
            "ats": [r.at if r else None for r in results],
            "codes": [r.status_code if r else None for r in results],
            "latencies": [r.latency_ms if r else None for r in results],
            "errors": [r.error if r else _why_untried(s) for s, r in zip(settlements, results, strict=True)],
        }
        stops = [(s.stop_url, s.delivery_id) for s in settlements if s.stop_url is not None]
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(SETTLE, params)
            if stops:
                await conn.execute(
                    STOP_URLS, {"urls": [url for url, _ in stops], "ids": [i for _, i in stops]}
                )


def _why_untried(settlement: Settlement) -> str | None:
    if settlement.verdict is Verdict.STOPPED:
        return "the URL answered 410 Gone to an earlier delivery"
    return None


class WebhookLogStore:
    """A call's deliveries and their tries, for GET /v1/calls/{id}/webhooks (role sespcl_api)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @raises_port_errors
    async def call_exists(self, call_id: UUID) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM calls WHERE id = %s", (call_id,))
            return await cur.fetchone() is not None

    @raises_port_errors
    async def deliveries(self, call_id: UUID) -> list[dict[str, Any]]:
        """The call's deliveries in event order, each with its `tries` (in order)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT id, seq, type, url, status, tries AS try_count, next_try_at, created_at,
                       delivered_at, ended_at, last_status_code, last_error
                FROM webhook_deliveries WHERE call_id = %s ORDER BY seq
                """,
                (call_id,),
            )
            deliveries = [dict(row) for row in await cur.fetchall()]
            cur = await conn.execute(
                """
                SELECT t.delivery_id, t.number, t.at, t.status_code, t.latency_ms, t.error
                FROM webhook_tries t JOIN webhook_deliveries d ON d.id = t.delivery_id
                WHERE d.call_id = %s ORDER BY t.delivery_id, t.number
                """,
                (call_id,),
            )
            tries = await cur.fetchall()
        by_delivery: dict[str, list[dict[str, Any]]] = {d["id"]: [] for d in deliveries}
        for row in tries:
            by_delivery.setdefault(row["delivery_id"], []).append(dict(row))
        for delivery in deliveries:
            delivery["tries"] = by_delivery[delivery["id"]]
        return deliveries
