"""Which dispatcher owns which attempts: heartbeats, a clean retire, the attempts of a stopped
dispatcher adopted, the mark that says an attempt is being sent, and attempts known never sent
put back in the queue."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import DictRow

from orchestrator.domain.call import CallStatus
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import AdoptedAttempt, Marked, Requeued
from orchestrator.domain.retry import RetryPolicy
from orchestrator.persistence.calls import CAMPAIGN_CANCELED, CANCELED_BEFORE_DIALING, TRUNK_REMOVED
from orchestrator.persistence.db import Connection

Row = DictRow

_REQUEUED_REASON = "queued again: its dispatcher stopped before dialing it"
_STRAY_REASON = "queued again: its claim was stored but its dispatcher never heard back"
_REFUSED_REASON = "queued again: the node made no channel for it (nothing was dialed)"
_DRAINED_REASON = "queued again: its node was drained before it was dialed"
_PAUSED_REASON = "queued again: its campaign was paused before it was dialed"
_UNSENT_REASONS = {Unsent.NOT_SENT: _REQUEUED_REASON, Unsent.REFUSED: _REFUSED_REASON}
_REQUEUE_TEMPLATE = """
    WITH unsent AS (
        SELECT a.id, a.call_id, a.number FROM call_attempts a JOIN calls c ON c.id = a.call_id
        WHERE {which} AND a.owner = %(me)s AND a.ended_at IS NULL
        FOR UPDATE OF a, c
    ), gone AS (
        DELETE FROM call_attempts a USING unsent u WHERE a.id = u.id RETURNING a.id, a.call_id, u.number
    ), stop AS (
        SELECT g.id, CASE WHEN c.cancel_requested_at IS NOT NULL THEN %(canceled)s
                          WHEN EXISTS (SELECT 1 FROM campaigns k WHERE k.id = c.campaign_id
                                       AND k.status = 'canceled') THEN %(campaign_canceled)s
                          WHEN NOT EXISTS (SELECT 1 FROM trunks t WHERE t.name = c.trunk)
                          THEN %(trunk_removed)s END AS reason
        FROM gone g JOIN calls c ON c.id = g.call_id
    )
    UPDATE calls c SET
        status = CASE WHEN s.reason IS NULL THEN 'queued' ELSE 'canceled' END,
        status_reason = coalesce(s.reason, %(reason)s),
        ended_at = CASE WHEN s.reason IS NULL THEN NULL ELSE now() END,
        attempt_count = g.number - 1,
        updated_at = now()
    FROM gone g JOIN stop s ON s.id = g.id
    WHERE c.id = g.call_id AND c.status = 'initiated'  -- else its status stands
    RETURNING c.id AS call_id, g.id AS attempt_id, c.status
"""
_REQUEUE_UNSENT_SQL = _REQUEUE_TEMPLATE.format(which="a.id = ANY(%(ids)s)")
# Claimed for a node drained since: never marked, so never dialed.
_REQUEUE_DRAINED_SQL = _REQUEUE_TEMPLATE.format(
    which="a.id = ANY(%(ids)s) AND NOT a.originate_sent "
    "AND EXISTS (SELECT 1 FROM nodes n WHERE n.name = a.node AND n.drained)"
)
# Not marked sent, and old: the claim that made them raised after its COMMIT had landed, so the
# dispatcher never followed them. Checked under the row lock: a mark that wins is never undone.
_REQUEUE_STRAY_SQL = _REQUEUE_TEMPLATE.format(
    which="NOT a.originate_sent AND a.started_at < now() - make_interval(secs => %(older_than_s)s)"
)

# Claimed for a campaign paused or canceled since: never marked, so never dialed (a canceled
# campaign's call ends canceled, by the stop above).
_REQUEUE_HELD_SQL = _REQUEUE_TEMPLATE.format(
    which="a.id = ANY(%(ids)s) AND NOT a.originate_sent "
    "AND EXISTS (SELECT 1 FROM campaigns k WHERE k.id = c.campaign_id AND k.status <> 'active')"
)

# Marked sent just before the Originates go, unless the node was drained or the call's campaign
# paused or canceled since the claim. The node and campaign rows are held (FOR SHARE) until the
# mark commits, so a drain, pause or cancel waits for a mark in progress and every later mark
# sees it: once `nodes drain` or a campaign's pause or cancel returns, nothing more of it is
# sent. (An Originate of an attempt marked just before still leaves, the moment after its mark.)
_MARK_SENDING_SQL = """
    WITH open_nodes AS (
        SELECT n.name FROM nodes n
        WHERE n.name IN (SELECT node FROM call_attempts WHERE id = ANY(%(ids)s)) AND NOT n.drained
        FOR SHARE
    ), active_campaigns AS (
        SELECT k.id FROM campaigns k
        WHERE k.id IN (SELECT c.campaign_id FROM call_attempts a JOIN calls c ON c.id = a.call_id
                       WHERE a.id = ANY(%(ids)s))
          AND k.status = 'active'
        FOR SHARE
    )
    UPDATE call_attempts a SET originate_sent = true
    FROM calls c
    WHERE a.id = ANY(%(ids)s) AND a.owner = %(me)s AND a.ended_at IS NULL
      AND a.node IN (SELECT name FROM open_nodes)
      AND c.id = a.call_id
      AND (c.campaign_id IS NULL OR c.campaign_id IN (SELECT id FROM active_campaigns))
    RETURNING a.id
"""

_ADOPT_SQL = """
    WITH orphans AS (
        SELECT a.id FROM call_attempts a
        WHERE a.ended_at IS NULL AND a.owner IS DISTINCT FROM %(me)s
          AND NOT EXISTS (SELECT 1 FROM dispatchers d WHERE d.id = a.owner
                          AND d.heartbeat_at > now() - make_interval(secs => %(stale)s))
        FOR UPDATE OF a SKIP LOCKED
    )
    UPDATE call_attempts a SET owner = %(me)s FROM orphans o, calls c
    WHERE a.id = o.id AND c.id = a.call_id
    RETURNING a.id, a.call_id, a.node, a.status, a.channel, a.started_at, a.number,
              a.originate_sent, c.max_attempts, c.retry_on, c.retry_backoff_s,
              a.answered_at IS NOT NULL AS answered,
              c.cancel_requested_at IS NOT NULL AS cancel_requested, c.ring_timeout_s, a.trunk,
              c.campaign_id
"""


async def heartbeat(conn: Connection, owner: str, host: str, pid: int) -> None:
    await conn.execute(
        """
        INSERT INTO dispatchers (id, host, pid) VALUES (%s, %s, %s)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
        """,
        (owner, host, pid),
    )


async def dispatchers_on(conn: Connection, owner: str, host: str) -> list[tuple[str, int]]:
    """The other dispatchers registered on `host`, with their pids."""
    cur = await conn.execute("SELECT id, pid FROM dispatchers WHERE host = %s AND id <> %s", (host, owner))
    return [(str(r["id"]), int(r["pid"])) for r in await cur.fetchall()]


async def retire(conn: Connection, owner: str) -> None:
    """A clean stop: hand this dispatcher's attempts over at once instead of after a timeout."""
    await conn.execute("DELETE FROM dispatchers WHERE id = %s", (owner,))


async def adopt_orphans(
    conn: Connection, owner: str, stale_after_s: float, dead_here: list[str] | None
) -> list[AdoptedAttempt]:
    """Take over the live attempts of dispatchers that stopped (no heartbeat) or are gone.
    `dead_here`: dispatchers known dead at once (same host, their process is gone)."""
    async with conn.transaction():
        if dead_here:
            await conn.execute("DELETE FROM dispatchers WHERE id = ANY(%s)", (dead_here,))
        cur = await conn.execute(_ADOPT_SQL, {"me": owner, "stale": stale_after_s})
        adopted = await cur.fetchall()
        await conn.execute(
            "DELETE FROM dispatchers WHERE heartbeat_at < now() - make_interval(secs => %s) * 10",
            (stale_after_s,),
        )
    # Read once committed: the attempts are this dispatcher's whatever their rows hold.
    return [_adopted(row) for row in adopted]


def _adopted(row: Row) -> AdoptedAttempt:
    return AdoptedAttempt(
        attempt_id=row["id"],
        call_id=row["call_id"],
        node=str(row["node"]),
        status=CallStatus(row["status"]),
        channel=row["channel"],
        started_at=row["started_at"],
        number=int(row["number"]),
        originate_sent=bool(row["originate_sent"]),
        answered=bool(row["answered"]),
        cancel_requested=bool(row["cancel_requested"]),
        ring_timeout_s=int(row["ring_timeout_s"]),
        trunk=str(row["trunk"]),
        retry=RetryPolicy.from_row(row),
        campaign_id=row["campaign_id"],
    )


async def mark_sending(conn: Connection, owner: str, attempt_ids: list[UUID]) -> Marked:
    """Just before their Originates go out: the attempts to dial, still this dispatcher's (one
    adopted meanwhile by another, after a long stall, must not be dialed from here), on a node
    not drained and of a campaign neither paused nor canceled since the claim; the others go
    back to the queue (a canceled campaign's end canceled)."""
    params = {
        "ids": attempt_ids,
        "me": owner,
        "reason": _DRAINED_REASON,
        "canceled": CANCELED_BEFORE_DIALING,
        "campaign_canceled": CAMPAIGN_CANCELED,
        "trunk_removed": TRUNK_REMOVED,
    }
    async with conn.transaction():
        cur = await conn.execute(_MARK_SENDING_SQL, params)
        sent = frozenset(row["id"] for row in await cur.fetchall())
        requeued: list[Row] = []
        if len(sent) < len(attempt_ids):
            cur = await conn.execute(_REQUEUE_DRAINED_SQL, params)
            requeued = await cur.fetchall()
            cur = await conn.execute(_REQUEUE_HELD_SQL, params | {"reason": _PAUSED_REASON})
            requeued += await cur.fetchall()
    return Marked(sent, tuple(_requeued(row) for row in requeued))


async def requeue_unsent(
    conn: Connection, owner: str, attempt_ids: list[UUID], why: Unsent
) -> list[Requeued]:
    """Attempts of this dispatcher that it knows were never sent (the caller's word: its own
    claims whose mark failed, or adopted ones never marked, or those a node made no channel
    for): removed, and their calls queued again (canceled instead if a cancel came
    meanwhile), the attempt not counted. `why` words the reason in the call's history.
    Returns each call put back."""
    return await _requeue(conn, owner, _REQUEUE_UNSENT_SQL, _UNSENT_REASONS[why], ids=attempt_ids)


async def requeue_stray(conn: Connection, owner: str, older_than_s: float) -> list[Requeued]:
    """This dispatcher's attempts never marked sent and older than `older_than_s`: claims it
    did not hear back from (the connection failed after the COMMIT). As `requeue_unsent`."""
    return await _requeue(conn, owner, _REQUEUE_STRAY_SQL, _STRAY_REASON, older_than_s=older_than_s)


async def _requeue(conn: Connection, owner: str, sql: str, reason: str, **which: Any) -> list[Requeued]:
    async with conn.transaction():
        cur = await conn.execute(
            sql,
            {
                "me": owner,
                "reason": reason,
                "canceled": CANCELED_BEFORE_DIALING,
                "campaign_canceled": CAMPAIGN_CANCELED,
                "trunk_removed": TRUNK_REMOVED,
                **which,
            },
        )
        rows = await cur.fetchall()
    return [_requeued(row) for row in rows]


def _requeued(row: Row) -> Requeued:
    return Requeued(row["call_id"], row["attempt_id"], CallStatus(row["status"]))
