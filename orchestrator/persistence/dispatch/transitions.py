"""Status transitions stored: set-based, a statement per layer and kind (plain or retry)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.facts import CallFact, Change
from orchestrator.domain.records import StoredStatus
from orchestrator.persistence.calls import CAMPAIGN_CANCELED, CANCELED_BY_REQUEST, TRUNK_REMOVED
from orchestrator.persistence.db import Connection
from orchestrator.persistence.dispatch.facts import APPLY_FACTS_SQL, facts_params

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


def transition_layers(transitions: Sequence[Change]) -> list[list[int]]:
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


async def apply(conn: Connection, owner: str, transitions: Sequence[Change]) -> list[StoredStatus | None]:
    """Store transitions (and facts: digits, verdicts, hooks) in order, in one transaction. The
    SQL re-checks that each status moves forward, so a status written by another process is
    never overtaken backwards.
    Returns, per transition, the status its call row took, or None when the row did not move.

    A statement per layer and kind (plain status, retry, fact), not one per transition: at a
    few hundred calls a second, per-statement work was a large share of the dispatcher."""
    stored: list[StoredStatus | None] = [None] * len(transitions)
    # Pipelined: BEGIN, the statements and COMMIT go out together, and no statement needs
    # an earlier one's result here, so the whole batch costs about one round trip.
    async with conn.pipeline(), conn.transaction():
        cursors = [
            await conn.execute(sql, params(owner, part, [transitions[i] for i in part]))
            for sql, params, part in _statements(transitions)
        ]
    for cur in cursors:
        for row in await cur.fetchall():
            if "status" in row:
                stored[row["idx"]] = StoredStatus(CallStatus(row["status"]), row["status_reason"])
    return stored


_Params = Callable[[str, list[int], list[Any]], dict[str, Any]]


def _kind(change: Change) -> str:
    if isinstance(change, CallFact):
        return "fact"
    return "plain" if change.retry_at is None else "retry"


def _statements(transitions: Sequence[Change]) -> list[tuple[str, _Params, list[int]]]:
    """(statement, its parameters, positions) in the order they run: per layer, the plain
    statuses, the retries, then the facts (a layer holds a call once, so their order within
    it is free)."""
    statements = []
    for layer in transition_layers(transitions):
        parts: dict[str, list[int]] = {kind: [] for kind in _STATEMENTS}
        for i in layer:
            parts[_kind(transitions[i])].append(i)
        statements += [(*_STATEMENTS[kind], part) for kind, part in parts.items() if part]
    return statements


def _params(owner: str, positions: list[int], run: list[Transition]) -> dict[str, Any]:
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
        "owner": owner,
        "by_request": CANCELED_BY_REQUEST,
        "campaign_canceled": CAMPAIGN_CANCELED,
        "trunk_removed": TRUNK_REMOVED,
    }


_STATEMENTS: dict[str, tuple[str, _Params]] = {
    "plain": (_APPLY_STATUS_SQL, _params),
    "retry": (_APPLY_RETRY_SQL, _params),
    "fact": (APPLY_FACTS_SQL, facts_params),
}
