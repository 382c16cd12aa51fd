"""What a call heard back (digits, the machine-detection verdict, hook results) stored on the
call, with its event, set-based like the status transitions and in the same transaction.

Digits that the call's `on_digits` answers with `"action": "dnc"` put the number on the
do-not-call list in the same statement: the opt-out holds from the moment it is stored, for
every later call to the number, whatever happens to the dispatcher afterwards."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.facts import CallFact
from orchestrator.domain.interaction import AnsweredBy

# Only the owner of the attempt writes (a fencing token, as for statuses). Each fact gets its
# event (`digits`, `machine_detection`, `hook`) in the same statement, as a status does.
APPLY_FACTS_SQL = """
    WITH v AS (
        SELECT * FROM unnest(
            %(idx)s::int[], %(calls)s::uuid[], %(attempts)s::uuid[], %(ats)s::timestamptz[],
            %(digits)s::text[], %(answered_by)s::text[], %(hook_names)s::text[], %(hook_values)s::text[]
        ) AS v(idx, call_id, attempt_id, at, digits, answered_by, hook_name, hook_value)
    ), owned AS (
        SELECT v.* FROM v JOIN call_attempts a ON a.id = v.attempt_id AND a.owner = %(owner)s
    ), changed AS (
        UPDATE calls c SET
            digits = coalesce(o.digits, c.digits),
            answered_by = coalesce(o.answered_by, c.answered_by),
            hooks = CASE WHEN o.hook_name IS NULL THEN c.hooks ELSE
                coalesce(c.hooks, '{}'::jsonb) || jsonb_build_object(o.hook_name, o.hook_value) END,
            updated_at = greatest(c.updated_at, o.at)
        FROM owned o WHERE c.id = o.call_id
        RETURNING o.idx, o.call_id, o.attempt_id, o.at, o.digits, o.answered_by, o.hook_name,
            o.hook_value, c.to_number,
            o.digits IS NOT NULL AND c.interaction -> 'on_digits' -> o.digits ->> 'action' = 'dnc' AS opt_out
    ), opted_out AS (
        INSERT INTO dnc (number, reason)
        SELECT to_number, %(dnc_reason)s || ' (call ' || call_id || ')' FROM changed WHERE opt_out
        ON CONFLICT (number) DO NOTHING
    ), recorded AS (
        INSERT INTO call_events (call_id, attempt_id, at, type, data)
        SELECT call_id, attempt_id, at + interval '1 microsecond',
            CASE WHEN digits IS NOT NULL THEN 'digits'
                 WHEN answered_by IS NOT NULL THEN 'machine_detection' ELSE 'hook' END,
            jsonb_strip_nulls(jsonb_build_object(
                'digits', digits, 'answered_by', answered_by, 'name', hook_name, 'value', hook_value,
                'dnc', CASE WHEN opt_out THEN true END))
        FROM changed
    )
    SELECT idx FROM changed
"""

DNC_OPT_OUT_REASON = "the callee asked not to be called again, by pressing a key"


def facts_params(owner: str, positions: list[int], facts: list[CallFact]) -> dict[str, Any]:
    return {
        "idx": positions,
        "calls": [f.call_id for f in facts],
        "attempts": [f.attempt_id for f in facts],
        "ats": [f.at for f in facts],
        "digits": [f.digits for f in facts],
        "answered_by": [_verdict(f.answered_by) for f in facts],
        "hook_names": [f.hook[0] if f.hook else None for f in facts],
        "hook_values": [f.hook[1] if f.hook else None for f in facts],
        "owner": owner,
        "dnc_reason": DNC_OPT_OUT_REASON,
    }


def _verdict(verdict: AnsweredBy | None) -> str | None:
    return None if verdict is None else verdict.value
