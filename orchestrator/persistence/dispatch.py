"""What the dispatcher reads and writes: claims, attempts, status transitions, cancels."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.calling_hours import CallingWindow, Defer, Expire, dial_decision
from orchestrator.domain.limits import TrunkLimits, cps_window_s, trunk_budget
from orchestrator.domain.pacing import trim_to_room
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import Claim, Marked, NodeRow, StoredStatus
from orchestrator.domain.retry import RetryPolicy
from orchestrator.persistence.calls import (
    CAMPAIGN_CANCELED,
    CANCELED_BEFORE_DIALING,
    CANCELED_BY_REQUEST,
    DNC_REASON,
    TRUNK_REMOVED,
)
from orchestrator.persistence.db import Pool
from orchestrator.persistence.events import record_events_async

Row = dict[str, Any]


EXPIRED_REASON = "expired before it could be dialed"

_REQUEUED_REASON = "queued again: its dispatcher stopped before dialing it"
_STRAY_REASON = "queued again: its claim was stored but its dispatcher never heard back"
_REFUSED_REASON = "queued again: the node made no channel for it (nothing was dialed)"
_DRAINED_REASON = "queued again: its node was drained before it was dialed"
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

# Per trunk, in one round trip: its live attempts, those started inside its cps window (a NULL
# window: no cps), and whether it has anything to dial. A claim then queries only the trunks
# with work, not every trunk of the farm on every poll. The window is measured from
# statement_timestamp(), not clock_timestamp(): a volatile bound cannot be an index condition,
# and the count then read every attempt the trunk ever made, at every poll.
_TRUNK_LOAD_SQL = """
    SELECT t.name,
        (SELECT count(*) FROM call_attempts a WHERE a.ended_at IS NULL AND a.trunk = t.name) AS live,
        CASE WHEN t.window_s IS NULL THEN 0 ELSE
            (SELECT count(*) FROM call_attempts a WHERE a.trunk = t.name
             AND a.started_at > statement_timestamp() - make_interval(secs => t.window_s)) END AS recent,
        EXISTS (SELECT 1 FROM calls c WHERE c.status = 'queued' AND c.trunk = t.name
                AND c.campaign_id IS NULL AND c.not_before <= now()) AS singles,
        EXISTS (SELECT 1 FROM calls c WHERE c.status = 'queued' AND c.trunk = t.name
                AND c.campaign_id IS NOT NULL) AS campaigns
    FROM unnest(%(names)s::text[], %(windows)s::float8[]) AS t(name, window_s)
"""

# Each node's free channels across the farm: every dispatcher's live attempts on it count. A
# node drained since this dispatcher last read the nodes has none: `nodes drain` holds at once.
_NODE_ROOM_SQL = """
    SELECT n.name, n.max_channels - (SELECT count(*) FROM call_attempts a
                                     WHERE a.ended_at IS NULL AND a.node = n.name) AS room
    FROM nodes n WHERE n.name = ANY(%s) AND NOT n.drained
"""

# Marked sent just before the Originates go, unless the node was drained since the claim. The
# node rows are held (FOR SHARE) until the mark commits, so a drain waits for a mark in
# progress and every later mark sees it: once `nodes drain` returns, nothing more is sent there.
_MARK_SENDING_SQL = """
    WITH open_nodes AS (
        SELECT n.name FROM nodes n
        WHERE n.name IN (SELECT node FROM call_attempts WHERE id = ANY(%(ids)s)) AND NOT n.drained
        FOR SHARE
    )
    UPDATE call_attempts SET originate_sent = true
    WHERE id = ANY(%(ids)s) AND owner = %(me)s AND ended_at IS NULL
      AND node IN (SELECT name FROM open_nodes)
    RETURNING id
"""

# What a claim reads of each candidate call (c: calls, a: its audio asset).
_CANDIDATE_COLUMNS = """
    c.id, c.to_number, c.from_number, c.trunk, c.ring_timeout_s, c.attempt_count, c.created_at,
    c.campaign_id, a.path, c.not_before, c.expires_at, c.window_start, c.window_end, c.time_zones,
    c.max_attempts, c.retry_on, c.retry_backoff_s
"""

# The claimed calls' attempts, their calls' status and the `initiated` events, in one statement.
# started_at is read after the trunk counts, inside the same locked transaction, so a trunk's cps
# window counts every call another dispatcher's claim could start.
_START_ATTEMPTS_SQL = """
    WITH v AS (
        SELECT * FROM unnest(%(ids)s::uuid[], %(calls)s::uuid[], %(numbers)s::int[], %(nodes)s::text[],
                             %(trunks)s::text[]) AS v(id, call_id, number, node, trunk)
    ), started AS MATERIALIZED (
        SELECT clock_timestamp() AS at
    ), attempts AS (
        INSERT INTO call_attempts
            (id, call_id, number, node, trunk, status, started_at, owner, originate_sent)
        SELECT v.id, v.call_id, v.number, v.node, v.trunk, 'initiated', s.at, %(owner)s, false
        FROM v, started s
    ), calls_started AS (
        -- A new attempt's reason is its own: the last one's ("retrying after busy") goes.
        UPDATE calls c SET status = 'initiated', attempt_count = v.number, updated_at = s.at,
            status_reason = NULL
        FROM v, started s WHERE c.id = v.call_id
    )
    INSERT INTO call_events (call_id, attempt_id, at, type, data)
    SELECT v.call_id, v.id, s.at, 'status',
           jsonb_build_object('status', 'initiated', 'attempt', v.number, 'node', v.node)
    FROM v, started s
    RETURNING at
"""

# A transition moves its attempt, then its call. The attempt only if this dispatcher still owns
# it (a fencing token: an attempt adopted by another dispatcher is left alone, and so is its
# call); both only forward in rank, so a status another process wrote is never overtaken.
# Set-based: one statement stores many transitions (at most one per call: see
# `transition_layers`), and returns the positions of those whose call row changed.
# Each call row that changes gets its `status` event in the same statement: the event log that
# dashboards read never misses a status, whatever happens to the dispatcher or to Redis. It is
# stamped a microsecond after the AMI event that caused it, so it sorts after that one.
_APPLY_ATTEMPTS_CTE = """
    WITH v AS (
        SELECT * FROM unnest(
            %(idx)s::int[], %(calls)s::uuid[], %(attempts)s::uuid[], %(statuses)s::text[],
            %(ats)s::timestamptz[], %(answered)s::bool[], %(final)s::bool[], %(causes)s::int[],
            %(cause_texts)s::text[], %(reasons)s::text[], %(channels)s::text[],
            %(retry_ats)s::timestamptz[], %(retry_reasons)s::text[]
        ) AS v(idx, call_id, attempt_id, status, at, answered, final, cause, cause_text, reason,
               channel, retry_at, retry_reason)
    ), attempt AS (
        UPDATE call_attempts a SET status = v.status,
            channel = coalesce(a.channel, v.channel),
            answered_at = CASE WHEN v.answered THEN coalesce(a.answered_at, v.at) ELSE a.answered_at END,
            ended_at = CASE WHEN v.final THEN v.at ELSE a.ended_at END,
            hangup_cause = coalesce(v.cause, a.hangup_cause),
            hangup_cause_text = coalesce(v.cause_text, a.hangup_cause_text)
        FROM v WHERE a.id = v.attempt_id AND a.ended_at IS NULL AND a.owner = %(owner)s
          AND sespcl_status_rank(a.status) < sespcl_status_rank(v.status)
    ), owned AS (
        SELECT v.* FROM v JOIN call_attempts a ON a.id = v.attempt_id AND a.owner = %(owner)s
    )
"""
_RECORD_STATUS_EVENTS = """
    ), recorded AS (
        INSERT INTO call_events (call_id, attempt_id, at, type, data)
        SELECT call_id, attempt_id, at + interval '1 microsecond', 'status', data FROM changed
    )
    SELECT idx, status, status_reason FROM changed
"""
_APPLY_STATUS_SQL = (
    _APPLY_ATTEMPTS_CTE
    + """
    , changed AS (
    UPDATE calls c SET status = o.status, updated_at = o.at,
        answered_at = CASE WHEN o.answered THEN coalesce(c.answered_at, o.at) ELSE c.answered_at END,
        ended_at = CASE WHEN o.final THEN o.at ELSE c.ended_at END,
        hangup_cause = coalesce(o.cause, c.hangup_cause),
        hangup_cause_text = coalesce(o.cause_text, c.hangup_cause_text),
        status_reason = coalesce(o.reason, c.status_reason)
    FROM owned o WHERE c.id = o.call_id
      AND sespcl_status_rank(c.status) < sespcl_status_rank(o.status)
    RETURNING o.idx, o.call_id, o.attempt_id, o.at, c.status, c.status_reason,
        jsonb_strip_nulls(jsonb_build_object('status', o.status, 'cause', o.cause,
                                             'cause_text', o.cause_text, 'reason', o.reason)) AS data
    """
    + _RECORD_STATUS_EVENTS
)
# The attempt ended but the call tries again later: back to queued, once. Unless its cancel
# was asked for, its campaign canceled or its trunk removed (forced) while the attempt was live:
# then it ends canceled, as no claim would ever take it again.
_APPLY_RETRY_SQL = (
    _APPLY_ATTEMPTS_CTE
    + """
    , stop AS (
        SELECT o.idx, CASE WHEN c.cancel_requested_at IS NOT NULL THEN %(by_request)s
                           WHEN k.status = 'canceled' THEN %(campaign_canceled)s
                           WHEN NOT EXISTS (SELECT 1 FROM trunks t WHERE t.name = c.trunk)
                           THEN %(trunk_removed)s END AS reason
        FROM owned o JOIN calls c ON c.id = o.call_id LEFT JOIN campaigns k ON k.id = c.campaign_id
    ), changed AS (
    UPDATE calls c SET
        status = CASE WHEN s.reason IS NULL THEN 'queued' ELSE 'canceled' END,
        not_before = CASE WHEN s.reason IS NULL THEN o.retry_at ELSE c.not_before END,
        ended_at = CASE WHEN s.reason IS NULL THEN c.ended_at ELSE o.at END,
        updated_at = o.at,
        status_reason = coalesce(s.reason, o.retry_reason),
        hangup_cause = coalesce(o.cause, c.hangup_cause),
        hangup_cause_text = coalesce(o.cause_text, c.hangup_cause_text)
    FROM owned o JOIN stop s ON s.idx = o.idx
    WHERE c.id = o.call_id AND sespcl_status_rank(c.status) BETWEEN 1 AND 3
    RETURNING o.idx, o.call_id, o.attempt_id, o.at, c.status, c.status_reason,
        jsonb_strip_nulls(CASE WHEN s.reason IS NULL
            THEN jsonb_build_object('status', 'queued', 'retry_after', o.status, 'retry_at', o.retry_at,
                                    'cause', o.cause, 'cause_text', o.cause_text, 'reason', o.reason)
            -- the call ends canceled; its attempt ended as it did
            ELSE jsonb_build_object('status', 'canceled', 'attempt_status', o.status, 'cause', o.cause,
                                    'cause_text', o.cause_text, 'reason', s.reason)
        END) AS data
    """
    + _RECORD_STATUS_EVENTS
)


def transition_layers(transitions: list[Transition]) -> list[list[int]]:
    """Positions of `transitions`, in layers that can each be stored by one set-based statement:
    a call's k-th transition of the batch goes in layer k, so no layer holds a call twice (one
    UPDATE cannot move a row twice) and a call's transitions are stored in their order."""
    layers: list[list[int]] = []
    seen: dict[UUID, int] = {}
    for position, t in enumerate(transitions):
        depth = seen.get(t.call_id, 0)
        seen[t.call_id] = depth + 1
        if depth == len(layers):
            layers.append([])
        layers[depth].append(position)
    return layers


def _expire_sql(only_ids: bool) -> str:
    """Cancel queued calls past their expiry (all of them, or the ids given), with an event."""
    narrow = "AND id = ANY(%(ids)s)" if only_ids else ""
    return f"""
        WITH expired AS (
            UPDATE calls SET status = 'canceled', status_reason = %(reason)s, ended_at = now(),
                   updated_at = now()
            WHERE status = 'queued' AND expires_at <= now() {narrow}
            RETURNING id
        )
        INSERT INTO call_events (call_id, at, type, data)
        SELECT id, now(), 'status', jsonb_build_object('status', 'canceled', 'reason', %(reason)s::text)
        FROM expired
    """


def take_fairly(groups: list[list[Row]], budget: int) -> list[Row]:
    """Round robin over the groups (campaigns), oldest group first: the i-th call of every
    group before the (i+1)-th of any. Each row taken gets its `fair_rank` (its round)."""
    groups = sorted((g for g in groups if g), key=lambda g: (g[0]["not_before"], g[0]["id"]))
    taken: list[Row] = []
    for round_ in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if round_ < len(group) and len(taken) < budget:
                taken.append({**group[round_], "fair_rank": round_})
    return taken


class DispatchStore:
    """Everything one dispatcher instance (`owner`) reads and writes."""

    def __init__(self, pool: Pool, owner: str) -> None:
        self._pool = pool
        self.owner = owner

    async def heartbeat(self, host: str, pid: int) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO dispatchers (id, host, pid) VALUES (%s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
                """,
                (self.owner, host, pid),
            )

    async def dispatchers_on(self, host: str) -> list[tuple[str, int]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, pid FROM dispatchers WHERE host = %s AND id <> %s", (host, self.owner)
            )
            return [(str(r["id"]), int(r["pid"])) for r in await cur.fetchall()]

    async def retire(self) -> None:
        """A clean stop: hand this dispatcher's attempts over at once instead of after a timeout."""
        async with self._pool.connection() as conn:
            await conn.execute("DELETE FROM dispatchers WHERE id = %s", (self.owner,))

    async def adopt_orphans(self, stale_after_s: float, dead_here: list[str] | None = None) -> list[Row]:
        """Take over the live attempts of dispatchers that stopped (no heartbeat) or are gone.
        `dead_here`: dispatchers known dead at once (same host, their process is gone)."""
        async with self._pool.connection() as conn, conn.transaction():
            if dead_here:
                await conn.execute("DELETE FROM dispatchers WHERE id = ANY(%s)", (dead_here,))
            cur = await conn.execute(
                """
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
                          c.cancel_requested_at IS NOT NULL AS cancel_requested, c.ring_timeout_s
                """,
                {"me": self.owner, "stale": stale_after_s},
            )
            adopted = await cur.fetchall()
            await conn.execute(
                "DELETE FROM dispatchers WHERE heartbeat_at < now() - make_interval(secs => %s) * 10",
                (stale_after_s,),
            )
            return adopted

    async def mark_sending(self, attempt_ids: list[UUID]) -> Marked:
        """Just before their Originates go out: the attempts to dial, still this dispatcher's (one
        adopted meanwhile by another, after a long stall, must not be dialed from here) and on
        a node not drained since the claim; those on a drained node go back to the queue."""
        params = {
            "ids": attempt_ids,
            "me": self.owner,
            "reason": _DRAINED_REASON,
            "canceled": CANCELED_BEFORE_DIALING,
            "trunk_removed": TRUNK_REMOVED,
        }
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_MARK_SENDING_SQL, params)
            sent = frozenset(row["id"] for row in await cur.fetchall())
            requeued: tuple[Row, ...] = ()
            if len(sent) < len(attempt_ids):
                cur = await conn.execute(_REQUEUE_DRAINED_SQL, params)
                requeued = tuple(await cur.fetchall())
            return Marked(sent, requeued)

    async def requeue_unsent(self, attempt_ids: list[UUID], why: Unsent) -> list[Row]:
        """Attempts of this dispatcher that it knows were never sent (the caller's word: its own
        claims whose mark failed, or adopted ones never marked, or those a node made no channel
        for): removed, and their calls queued again (canceled instead if a cancel came
        meanwhile), the attempt not counted. `why` words the reason in the call's history.
        Returns (call_id, attempt_id, status) for each call put back."""
        if not attempt_ids:
            return []
        return await self._requeue(_REQUEUE_UNSENT_SQL, _UNSENT_REASONS[why], ids=attempt_ids)

    async def requeue_stray(self, older_than_s: float) -> list[Row]:
        """This dispatcher's attempts never marked sent and older than `older_than_s`: claims it
        did not hear back from (the connection failed after the COMMIT). As `requeue_unsent`."""
        return await self._requeue(_REQUEUE_STRAY_SQL, _STRAY_REASON, older_than_s=older_than_s)

    async def _requeue(self, sql: str, reason: str, **which: Any) -> list[Row]:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                sql,
                {
                    "me": self.owner,
                    "reason": reason,
                    "canceled": CANCELED_BEFORE_DIALING,
                    "trunk_removed": TRUNK_REMOVED,
                    **which,
                },
            )
            return await cur.fetchall()

    async def nodes(self) -> list[NodeRow]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT name, ami_host, ami_port, ami_user, ami_secret, max_channels, drained, ari_url, "
                "driver, ari_user, ari_secret "
                "FROM nodes ORDER BY name"
            )
            return [NodeRow(**row) for row in await cur.fetchall()]

    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]:
        """The nodes' own record of how these channels ended (cdr, by uniqueid = attempt id).
        A channel may leave more than one CDR; an answer anywhere wins."""
        if not attempt_ids:
            return {}
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT uniqueid, disposition FROM cdr WHERE uniqueid = ANY(%s) "
                "ORDER BY (disposition = 'ANSWERED') DESC",
                (attempt_ids,),
            )
            found: dict[str, str] = {}
            for row in await cur.fetchall():
                found.setdefault(str(row["uniqueid"]), str(row["disposition"]))
            return found

    async def mark_node(
        self, name: str, *, up: bool, version: str | None = None, pace_cps: float | None = None
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                """
                UPDATE nodes SET state = %s, version = coalesce(%s, version),
                       pace_cps = coalesce(%s, pace_cps),
                       last_seen_at = CASE WHEN %s THEN now() ELSE last_seen_at END
                WHERE name = %s
                """,
                ("up" if up else "down", version, pace_cps, up, name),
            )

    async def claim(self, node_plan: list[str]) -> list[Claim]:
        """Take up to len(node_plan) dialable calls, oldest first, the i-th for node_plan[i],
        keeping every trunk inside its max_channels and cps, and every node inside its
        max_channels, across all dispatchers.

        Locking the trunk rows serialises claims farm-wide, so the counts of live and recently
        started attempts cannot change underneath. The attempt row is committed before any
        Originate is sent, and SKIP LOCKED keeps two dispatchers off the same call.
        """
        if not node_plan:
            return []
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT name, max_channels, cps, caller_id, now() AS now FROM trunks ORDER BY name FOR UPDATE"
            )
            trunks = {row["name"]: row for row in await cur.fetchall()}
            if not trunks:
                return []
            cur = await conn.execute(_NODE_ROOM_SQL, (sorted(set(node_plan)),))
            node_plan = trim_to_room(node_plan, {row["name"]: row["room"] for row in await cur.fetchall()})
            if not node_plan:
                return []
            wanted = len(node_plan)
            now: datetime = next(iter(trunks.values()))["now"]  # the transaction's: calling hours
            cur = await conn.execute(
                _TRUNK_LOAD_SQL,
                {
                    "names": list(trunks),
                    "windows": [
                        cps_window_s(row["cps"]) if row["cps"] is not None else None
                        for row in trunks.values()
                    ],
                },
            )
            loads = {row["name"]: row for row in await cur.fetchall()}
            budgets = {
                name: trunk_budget(
                    TrunkLimits(name, row["max_channels"], row["cps"]),
                    int(loads[name]["live"]),
                    int(loads[name]["recent"]),
                    wanted,
                )
                for name, row in trunks.items()
                if loads[name]["singles"] or loads[name]["campaigns"]
            }
            budgets = {name: n for name, n in budgets.items() if n > 0}
            if not budgets:
                return []
            with_campaigns = [name for name in budgets if loads[name]["campaigns"]]
            held: list[UUID] = []
            campaign_budget: dict[UUID, int] = {}
            if with_campaigns:
                held, campaign_budget = await self._campaign_budgets(conn, wanted, with_campaigns)
            candidates: list[Row] = []
            for trunk, budget in budgets.items():
                groups = await self._campaign_groups(
                    conn,
                    trunk,
                    budget,
                    held,
                    campaigns=loads[trunk]["campaigns"],
                    singles=loads[trunk]["singles"],
                )
                candidates.extend(take_fairly(groups, budget))
            candidates.sort(key=lambda r: (r["fair_rank"], r["not_before"], r["id"]))
            picked_rows = candidates[:wanted]
            picked = await self._hold_back(conn, picked_rows, now)
            statuses = await self._lock_campaigns(conn, {row["campaign_id"] for row in picked} - {None})
            paused = {k for k, status in statuses.items() if status == "paused"}
            canceled = [k for k, status in statuses.items() if status == "canceled"]
            stopped = await self._cancel_stopped(conn, [row["id"] for row in picked], canceled)
            rows = []
            for row in picked:
                if row["id"] in stopped or row["campaign_id"] in paused:
                    continue
                campaign = row["campaign_id"]
                if campaign in campaign_budget:
                    if campaign_budget[campaign] <= 0:
                        continue
                    campaign_budget[campaign] -= 1
                rows.append(row)
            if not rows:
                return []
            planned = [(row, node, uuid.uuid4()) for row, node in zip(rows, node_plan)]
            cur = await conn.execute(
                _START_ATTEMPTS_SQL,
                {
                    "ids": [attempt for _, _, attempt in planned],
                    "calls": [row["id"] for row, _, _ in planned],
                    "numbers": [row["attempt_count"] + 1 for row, _, _ in planned],
                    "nodes": [node for _, node, _ in planned],
                    "trunks": [row["trunk"] for row, _, _ in planned],
                    "owner": self.owner,
                },
            )
            started = await cur.fetchone()
            assert started is not None
            return [
                Claim(
                    call_id=row["id"],
                    attempt_id=attempt,
                    attempt_number=row["attempt_count"] + 1,
                    node=node,
                    to=row["to_number"],
                    from_=row["from_number"] or trunks[row["trunk"]]["caller_id"],
                    trunk=row["trunk"],
                    audio_path=row["path"],
                    ring_timeout_s=row["ring_timeout_s"],
                    claimed_at=started["at"],
                    retry=RetryPolicy.from_row(row),
                )
                for row, node, attempt in planned
            ]

    @staticmethod
    async def _campaign_groups(
        conn: Any, trunk: str, limit: int, held: list[UUID], *, campaigns: bool, singles: bool
    ) -> list[list[Row]]:
        """A trunk's next dialable calls, up to `limit` per campaign (single calls are one more
        group), oldest first within each. Rows are locked; those not taken are freed at commit.
        `campaigns` and `singles` say which of the two queries can find anything."""
        groups = await DispatchStore._campaign_calls(conn, trunk, limit, held) if campaigns else []
        if singles and (found := await DispatchStore._single_calls(conn, trunk, limit)):
            groups.append(found)
        return groups

    @staticmethod
    async def _single_calls(conn: Any, trunk: str, limit: int) -> list[Row]:
        cur = await conn.execute(
            f"""
            SELECT {_CANDIDATE_COLUMNS} FROM calls c JOIN audio_assets a ON a.hash = c.audio_hash
            WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id IS NULL
              AND c.not_before <= now() AND a.status = 'ready'
            ORDER BY c.not_before, c.id LIMIT %(limit)s
            FOR UPDATE OF c SKIP LOCKED
            """,
            {"trunk": trunk, "limit": limit},
        )
        rows: list[Row] = await cur.fetchall()
        return rows

    @staticmethod
    async def _campaign_calls(conn: Any, trunk: str, limit: int, held: list[UUID]) -> list[list[Row]]:
        cur = await conn.execute(
            f"""
            WITH RECURSIVE campaigns_here AS (  -- distinct campaigns queued on the trunk: a skip scan
                (SELECT campaign_id FROM calls
                 WHERE status = 'queued' AND trunk = %(trunk)s AND campaign_id IS NOT NULL
                 ORDER BY campaign_id LIMIT 1)
                UNION ALL
                SELECT (SELECT c.campaign_id FROM calls c
                        WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id > h.campaign_id
                        ORDER BY c.campaign_id LIMIT 1)
                FROM campaigns_here h WHERE h.campaign_id IS NOT NULL
            )
            SELECT {_CANDIDATE_COLUMNS} FROM campaigns_here h
            CROSS JOIN LATERAL (
                SELECT c.* FROM calls c
                WHERE c.status = 'queued' AND c.trunk = %(trunk)s AND c.campaign_id = h.campaign_id
                  AND c.not_before <= now()
                ORDER BY c.not_before, c.id LIMIT %(limit)s * 2
            ) c
            JOIN audio_assets a ON a.hash = c.audio_hash AND a.status = 'ready'
            WHERE h.campaign_id IS NOT NULL AND h.campaign_id <> ALL(%(held)s::uuid[])
            ORDER BY c.campaign_id, c.not_before, c.id
            FOR UPDATE OF c SKIP LOCKED
            """,
            {"trunk": trunk, "limit": limit, "held": held},
        )
        by_campaign: dict[Any, list[Row]] = {}
        for row in await cur.fetchall():
            by_campaign.setdefault(row["campaign_id"], []).append(row)
        return [rows[:limit] for rows in by_campaign.values()]

    @staticmethod
    async def _hold_back(conn: Any, rows: list[Row], now: datetime) -> list[Row]:
        """Calling hours and expiry, checked just before dialing: a call outside its window
        waits (its not_before moves to the next opening), one past its expiry is canceled."""
        dial: list[Row] = []
        deferred: list[tuple[datetime, UUID]] = []
        expired: list[UUID] = []
        for row in rows:
            window = CallingWindow(row["window_start"], row["window_end"]) if row["window_start"] else None
            zones = tuple(row["time_zones"]) if row["time_zones"] else None
            decision = dial_decision(now, row["expires_at"], window, zones)
            if isinstance(decision, Defer):
                deferred.append((decision.until, row["id"]))
            elif isinstance(decision, Expire):
                expired.append(row["id"])
            else:
                dial.append(row)
        if deferred:
            async with conn.cursor() as cur2:
                await cur2.executemany("UPDATE calls SET not_before = %s WHERE id = %s", deferred)
        if expired:
            await conn.execute(_expire_sql(only_ids=True), {"reason": EXPIRED_REASON, "ids": expired})
        return dial

    async def expire_due(self) -> int:
        """Queued calls whose expiry passed while they waited (for a window, a pause…)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_expire_sql(only_ids=False), {"reason": EXPIRED_REASON})
            return cur.rowcount

    async def record_events(self, batch: list[dict[str, Any]]) -> int:
        """Stores a batch of events here, as the event worker would (when Redis is down)."""
        async with self._pool.connection() as conn:
            return await record_events_async(conn, batch)

    async def fold_status_counts(self) -> int:
        """Folds the status-count deltas the triggers wrote; returns how many rows went."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT sespcl_fold_status_counts() AS gone")
            row = await cur.fetchone()
            return int(row["gone"]) if row else 0

    @staticmethod
    async def _lock_campaigns(conn: Any, campaign_ids: set[UUID]) -> dict[UUID, str]:
        """Share-locks the picked calls' campaigns until the claim commits, and returns their
        status. A pause (or cancel) waits for a claim under way and then holds: once it has
        answered, no claim starts another call of the campaign."""
        if not campaign_ids:
            return {}
        cur = await conn.execute(
            "SELECT id, status FROM campaigns WHERE id = ANY(%s) ORDER BY id FOR SHARE",
            (sorted(campaign_ids),),
        )
        return {row["id"]: str(row["status"]) for row in await cur.fetchall()}

    @staticmethod
    async def _cancel_stopped(conn: Any, call_ids: list[UUID], canceled_campaigns: list[UUID]) -> set[UUID]:
        """Checked again just before dialing, and ended canceled with the reason: a number added
        to the do-not-call list since the call was accepted, a cancel asked for, or a campaign
        canceled (`canceled_campaigns`, as `_lock_campaigns` read them), while the call waited
        (for a retry, say)."""
        if not call_ids:
            return set()
        cur = await conn.execute(
            """
            WITH checked AS (
                SELECT c.id, CASE
                    WHEN c.cancel_requested_at IS NOT NULL THEN %(by_request)s
                    WHEN c.campaign_id = ANY(%(canceled_campaigns)s::uuid[]) THEN %(campaign_canceled)s
                    WHEN EXISTS (SELECT 1 FROM dnc d WHERE d.number = c.to_number) THEN %(dnc)s
                END AS reason
                FROM calls c WHERE c.id = ANY(%(ids)s)
            ), stopped AS (
                UPDATE calls c SET status = 'canceled', status_reason = x.reason, ended_at = now(),
                       updated_at = now()
                FROM checked x WHERE c.id = x.id AND x.reason IS NOT NULL
                RETURNING c.id, x.reason
            )
            INSERT INTO call_events (call_id, at, type, data)
            SELECT id, now(), 'status', jsonb_build_object('status', 'canceled', 'reason', reason)
            FROM stopped RETURNING call_id
            """,
            {
                "ids": call_ids,
                "canceled_campaigns": canceled_campaigns,
                "by_request": CANCELED_BY_REQUEST,
                "campaign_canceled": CAMPAIGN_CANCELED,
                "dnc": DNC_REASON,
            },
        )
        return {row["call_id"] for row in await cur.fetchall()}

    @staticmethod
    async def _campaign_budgets(
        conn: Any, wanted: int, trunks: list[str]
    ) -> tuple[list[UUID], dict[UUID, int]]:
        """Campaigns whose calls may not be dialed now (paused, canceled, or at their own cps),
        and how many more the others with a cps may start in this claim. Only campaigns with
        calls queued on these trunks count: finished ones would cost a query each, every poll."""
        cur = await conn.execute(
            # A canceled campaign's calls still queued (a retry that raced the cancel) are ended
            # by `_cancel_stopped` once picked: only paused and paced ones matter here.
            "SELECT k.id, k.status, k.cps FROM campaigns k "
            "WHERE (k.status = 'paused' OR (k.status = 'active' AND k.cps IS NOT NULL)) "
            "AND EXISTS (SELECT 1 FROM calls c WHERE c.status = 'queued' AND c.trunk = ANY(%s) "
            "AND c.campaign_id = k.id)",
            (trunks,),
        )
        held: list[UUID] = []
        budget: dict[UUID, int] = {}
        for row in await cur.fetchall():
            if row["status"] != "active":
                held.append(row["id"])
                continue
            cur2 = await conn.execute(
                """
                SELECT count(*) AS n FROM call_attempts a JOIN calls c ON c.id = a.call_id
                WHERE a.started_at > statement_timestamp() - make_interval(secs => %s) AND c.campaign_id = %s
                """,
                (cps_window_s(row["cps"]), row["id"]),
            )
            started = await cur2.fetchone()
            room = trunk_budget(TrunkLimits("campaign", None, row["cps"]), 0, int(started["n"]), wanted)
            if room <= 0:
                held.append(row["id"])  # keep its calls out of the query: others go first
            else:
                budget[row["id"]] = room
        return held, budget

    async def apply(self, transitions: list[Transition]) -> list[StoredStatus | None]:
        """Store transitions in order, in one transaction. The SQL re-checks that each one moves
        forward, so a status written by another process is never overtaken backwards.
        Returns, per transition, the status its call row took, or None when the row did not move.

        A statement per layer and kind (plain status or retry), not one per transition: at a
        few hundred calls a second, per-statement work was a large share of the dispatcher."""
        stored: list[StoredStatus | None] = [None] * len(transitions)
        if not transitions:
            return stored
        # Pipelined: BEGIN, the statements and COMMIT go out together, and no statement needs
        # an earlier one's result here, so the whole batch costs about one round trip.
        async with self._pool.connection() as conn:
            async with conn.pipeline(), conn.transaction():
                cursors = []
                for layer in transition_layers(transitions):
                    for retry in (False, True):
                        part = [i for i in layer if (transitions[i].retry_at is not None) == retry]
                        if part:
                            cursors.append(
                                await conn.execute(
                                    _APPLY_RETRY_SQL if retry else _APPLY_STATUS_SQL,
                                    self._transition_params(part, [transitions[i] for i in part]),
                                )
                            )
            for cur in cursors:
                for row in await cur.fetchall():
                    stored[row["idx"]] = StoredStatus(CallStatus(row["status"]), row["status_reason"])
        return stored

    def _transition_params(self, positions: list[int], run: list[Transition]) -> dict[str, Any]:
        endings = [t.ending for t in run]
        return {
            "idx": positions,
            "calls": [t.call_id for t in run],
            "attempts": [t.attempt_id for t in run],
            "statuses": [t.status.value for t in run],
            "ats": [t.at for t in run],
            "answered": [t.answered for t in run],
            "final": [e is not None for e in endings],
            "causes": [e.cause if e else None for e in endings],
            "cause_texts": [e.cause_text if e else None for e in endings],
            "reasons": [(e.reason or None) if e else None for e in endings],
            "channels": [t.channel for t in run],
            "retry_ats": [t.retry_at for t in run],
            "retry_reasons": [f"retrying after {t.status.value}" if t.retry_at else None for t in run],
            "owner": self.owner,
            "by_request": CANCELED_BY_REQUEST,
            "campaign_canceled": CAMPAIGN_CANCELED,
            "trunk_removed": TRUNK_REMOVED,
        }

    async def stale_renders(self, older_than_s: float) -> list[str]:
        """Prompts still pending a while after they were asked for: their job may be lost."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT hash FROM audio_assets WHERE status = 'pending' "
                "AND created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT 1000",
                (older_than_s,),
            )
            return [str(row["hash"]) for row in await cur.fetchall()]

    async def cancel_requests(self) -> list[UUID]:
        """Live calls whose cancel was asked for through the API."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT id FROM calls
                WHERE cancel_requested_at IS NOT NULL
                  AND status IN ('initiated', 'ringing', 'in-progress')
                """
            )
            return [row["id"] for row in await cur.fetchall()]
