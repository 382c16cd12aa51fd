"""A claim: dialable calls taken off the queue and their attempts started, inside every trunk's,
node's and campaign's limits across all dispatchers. One transaction, in named steps: lock the
trunks, the nodes' room, the trunks' loads and budgets, the campaigns' budgets, the candidates,
held back by calling hours, the campaigns' states, the attempts started."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from orchestrator.domain.interaction import Interaction
from orchestrator.domain.limits import TrunkLimits, cps_window_s, trunk_budget
from orchestrator.domain.planning import trim_to_room
from orchestrator.domain.records import Claim
from orchestrator.domain.retry import RetryPolicy
from orchestrator.persistence.calls import CAMPAIGN_CANCELED, CANCELED_BY_REQUEST, DNC_REASON
from orchestrator.persistence.db import Connection, one_row
from orchestrator.persistence.dispatch.candidates import Row, campaign_groups, hold_back, take_fairly

# Locking the trunk rows serialises claims farm-wide: the counts below cannot change underneath.
_LOCK_TRUNKS_SQL = (
    "SELECT name, max_channels, cps, caller_id, now() AS now FROM trunks ORDER BY name FOR UPDATE"
)

# Each node's free channels across the farm: every dispatcher's live attempts on it count. A
# node drained since this dispatcher last read the nodes has none: `nodes drain` holds at once.
_NODE_ROOM_SQL = """
    SELECT n.name, n.max_channels - (SELECT count(*) FROM call_attempts a
                                     WHERE a.ended_at IS NULL AND a.node = n.name) AS room
    FROM nodes n WHERE n.name = ANY(%s) AND NOT n.drained
"""

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

# A canceled campaign's queued calls are held too: the background cancel (dispatch/cancels.py)
# ends them, so they take no room in a claim meant for calls that will be dialed. One a claim
# picks all the same (canceled since) is ended by `_cancel_stopped`.
_HELD_OR_PACED_SQL = (
    "SELECT k.id, k.status, k.cps FROM campaigns k "
    "WHERE (k.status IN ('paused', 'canceled') OR (k.status = 'active' AND k.cps IS NOT NULL)) "
    "AND EXISTS (SELECT 1 FROM calls c WHERE c.status = 'queued' AND c.trunk = ANY(%s) "
    "AND c.campaign_id = k.id)"
)
_CAMPAIGN_STARTED_SQL = """
    SELECT count(*) AS n FROM call_attempts a JOIN calls c ON c.id = a.call_id
    WHERE a.started_at > statement_timestamp() - make_interval(secs => %s) AND c.campaign_id = %s
"""

_LOCK_CAMPAIGNS_SQL = "SELECT id, status FROM campaigns WHERE id = ANY(%s) ORDER BY id FOR SHARE"

_CANCEL_STOPPED_SQL = """
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


@dataclass(frozen=True)
class TrunkWork:
    """What a trunk may start in this claim, and which of its two queries can find anything."""

    budget: int
    campaigns: bool
    singles: bool


async def claim(conn: Connection, owner: str, node_plan: list[str]) -> list[Claim]:
    """Take up to len(node_plan) dialable calls, oldest first, the i-th for node_plan[i],
    keeping every trunk inside its max_channels and cps, and every node inside its
    max_channels, across all dispatchers.

    Locking the trunk rows serialises claims farm-wide, so the counts of live and recently
    started attempts cannot change underneath. The attempt row is committed before any
    Originate is sent, and SKIP LOCKED keeps two dispatchers off the same call.
    """
    async with conn.transaction():
        trunks = await lock_trunks(conn)
        if not trunks:
            return []
        node_plan = await node_room(conn, node_plan)
        if not node_plan:
            return []
        wanted = len(node_plan)
        work = await trunk_work(conn, trunks, wanted)
        if not work:
            return []
        held, campaign_budget = await campaign_budgets(
            conn, wanted, [name for name, w in work.items() if w.campaigns]
        )
        picked = await candidates(conn, work, held, wanted)
        now: datetime = next(iter(trunks.values()))["now"]  # the transaction's: calling hours
        rows = await campaign_states(conn, await hold_back(conn, picked, now), campaign_budget)
        if not rows:
            return []
        return await start_attempts(conn, owner, rows, node_plan, trunks)


async def lock_trunks(conn: Connection) -> dict[str, Row]:
    """Every trunk, by name (in name order), locked until the claim commits."""
    cur = await conn.execute(_LOCK_TRUNKS_SQL)
    return {row["name"]: row for row in await cur.fetchall()}


async def node_room(conn: Connection, node_plan: list[str]) -> list[str]:
    """The plan without the calls past each node's free channels across the farm."""
    cur = await conn.execute(_NODE_ROOM_SQL, (sorted(set(node_plan)),))
    return trim_to_room(node_plan, {row["name"]: row["room"] for row in await cur.fetchall()})


async def trunk_work(conn: Connection, trunks: dict[str, Row], wanted: int) -> dict[str, TrunkWork]:
    """The trunks with something to dial and room to start it (their budget > 0), in name order."""
    cur = await conn.execute(
        _TRUNK_LOAD_SQL,
        {
            "names": list(trunks),
            "windows": [
                cps_window_s(row["cps"]) if row["cps"] is not None else None for row in trunks.values()
            ],
        },
    )
    loads = {row["name"]: row for row in await cur.fetchall()}
    work: dict[str, TrunkWork] = {}
    for name, trunk in trunks.items():
        load = loads[name]
        if not (load["singles"] or load["campaigns"]):
            continue
        limits = TrunkLimits(name, trunk["max_channels"], trunk["cps"])
        budget = trunk_budget(limits, int(load["live"]), int(load["recent"]), wanted)
        if budget > 0:
            work[name] = TrunkWork(budget, campaigns=load["campaigns"], singles=load["singles"])
    return work


async def campaign_budgets(
    conn: Connection, wanted: int, trunks: list[str]
) -> tuple[list[UUID], dict[UUID, int]]:
    """Campaigns whose calls may not be dialed now (paused, canceled, or at their own cps),
    and how many more the others with a cps may start in this claim. Only campaigns with
    calls queued on these trunks count: finished ones would cost a query each, every poll."""
    held: list[UUID] = []
    budget: dict[UUID, int] = {}
    if not trunks:
        return held, budget
    cur = await conn.execute(_HELD_OR_PACED_SQL, (trunks,))
    for row in await cur.fetchall():
        if row["status"] != "active":
            held.append(row["id"])
            continue
        started = await one_row(
            await conn.execute(_CAMPAIGN_STARTED_SQL, (cps_window_s(row["cps"]), row["id"]))
        )
        room = trunk_budget(TrunkLimits("campaign", None, row["cps"]), 0, int(started["n"]), wanted)
        if room <= 0:
            held.append(row["id"])  # keep its calls out of the query: others go first
        else:
            budget[row["id"]] = room
    return held, budget


async def candidates(
    conn: Connection, work: dict[str, TrunkWork], held: list[UUID], wanted: int
) -> list[Row]:
    """The calls to try, at most `wanted`: each trunk's within its budget, shared fairly between
    its campaigns; then across trunks by round, age and id."""
    found: list[Row] = []
    for trunk, w in work.items():
        groups = await campaign_groups(conn, trunk, w.budget, held, campaigns=w.campaigns, singles=w.singles)
        found.extend(take_fairly(groups, w.budget))
    found.sort(key=lambda r: (r["fair_rank"], r["not_before"], r["id"]))
    return found[:wanted]


async def campaign_states(conn: Connection, picked: list[Row], campaign_budget: dict[UUID, int]) -> list[Row]:
    """The picked calls still to dial now: not stopped (canceled, on the do-not-call list, or of a
    canceled campaign), not of a paused campaign, and within their campaign's budget, which
    each one taken uses up."""
    statuses = await _lock_campaigns(conn, {row["campaign_id"] for row in picked} - {None})
    paused = {k for k, status in statuses.items() if status == "paused"}
    canceled = [k for k, status in statuses.items() if status == "canceled"]
    stopped = await _cancel_stopped(conn, [row["id"] for row in picked], canceled)
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
    return rows


async def _lock_campaigns(conn: Connection, campaign_ids: set[UUID]) -> dict[UUID, str]:
    """Share-locks the picked calls' campaigns until the claim commits, and returns their
    status. A pause (or cancel) waits for a claim under way and then holds: once it has
    answered, no claim starts another call of the campaign."""
    if not campaign_ids:
        return {}
    cur = await conn.execute(_LOCK_CAMPAIGNS_SQL, (sorted(campaign_ids),))
    return {row["id"]: str(row["status"]) for row in await cur.fetchall()}


async def _cancel_stopped(
    conn: Connection, call_ids: list[UUID], canceled_campaigns: list[UUID]
) -> set[UUID]:
    """Checked again just before dialing, and ended canceled with the reason: a number added
    to the do-not-call list since the call was accepted, a cancel asked for, or a campaign
    canceled (`canceled_campaigns`, as `_lock_campaigns` read them), while the call waited
    (for a retry, say)."""
    if not call_ids:
        return set()
    cur = await conn.execute(
        _CANCEL_STOPPED_SQL,
        {
            "ids": call_ids,
            "canceled_campaigns": canceled_campaigns,
            "by_request": CANCELED_BY_REQUEST,
            "campaign_canceled": CAMPAIGN_CANCELED,
            "dnc": DNC_REASON,
        },
    )
    return {row["call_id"] for row in await cur.fetchall()}


async def start_attempts(
    conn: Connection, owner: str, rows: list[Row], node_plan: list[str], trunks: dict[str, Row]
) -> list[Claim]:
    """An attempt for each row, the i-th on node_plan[i], owned by `owner` and not yet sent."""
    planned = [(row, node, uuid.uuid4()) for row, node in zip(rows, node_plan)]
    cur = await conn.execute(
        _START_ATTEMPTS_SQL,
        {
            "ids": [attempt for _, _, attempt in planned],
            "calls": [row["id"] for row, _, _ in planned],
            "numbers": [row["attempt_count"] + 1 for row, _, _ in planned],
            "nodes": [node for _, node, _ in planned],
            "trunks": [row["trunk"] for row, _, _ in planned],
            "owner": owner,
        },
    )
    started = await one_row(cur)
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
            interaction=Interaction.from_json(row["interaction"]),
            extra_audio_paths=row["extra_paths"] or {},
            campaign_id=row["campaign_id"],
        )
        for row, node, attempt in planned
    ]
