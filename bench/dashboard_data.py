"""A few days of a farm's history, made in SQL for `make bench-dashboards`: campaigns and single
calls over a few carriers and nodes, each attempt with the events that the dispatcher, the
nodes' drivers and the status transitions record for its outcome, in time order as the
append-only log holds them. Everything is drawn server-side (generate_series, random()), one
chunk of calls a transaction.

Each day is busy for 13 hours (calling windows), busiest at midday; the last one ends two
minutes ago, so "the last 6 hours" is an afternoon's traffic. The running campaign still has
queued calls, and a few hundred calls are live (ringing or talking) now."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

HOURS_A_DAY = 13
CHUNK_CALLS = 50_000
RETRY_BACKOFF_S = 600
AUDIO_HASH = "d" * 64
PROMPT = "Hello, this is your energy provider with a message about your account."


@dataclass(frozen=True)
class Carrier:
    name: str
    share: float
    completed: float
    busy: float
    no_answer: float
    pdd_ms: int
    """Mean post-dial delay: the Originate sent to the far end ringing."""
    failure_cause: int
    failure_text: str

    @property
    def failed(self) -> float:
        return 1 - self.completed - self.busy - self.no_answer


CARRIERS = (
    Carrier("carrier-east", 0.40, 0.58, 0.10, 0.22, 1800, 34, "Circuit/channel congestion"),
    Carrier("carrier-west", 0.30, 0.52, 0.12, 0.24, 2400, 38, "Network out of order"),
    Carrier("carrier-eu", 0.20, 0.47, 0.09, 0.26, 3100, 27, "Destination out of order"),
    Carrier("carrier-backup", 0.10, 0.35, 0.08, 0.20, 4200, 1, "Unallocated (unassigned) number"),
)
NODES = (("n1", "ami"), ("n2", "ari"), ("n3", "ami"))


@dataclass(frozen=True)
class Campaign:
    name: str
    share: float
    max_attempts: int
    amd: bool
    gather: bool


CAMPAIGNS = (
    Campaign("Outage notice, north district", 0.30, 2, False, False),
    Campaign("Appointment reminders", 0.22, 3, True, True),
    Campaign("Payment confirmation, press 1", 0.15, 2, False, True),
    Campaign("Flood warning", 0.08, 1, True, False),
    Campaign("Survey: rate our service", 0.05, 2, True, True),
)
"""The rest of the calls are single API calls, in no campaign. The last campaign is running."""
RUNNING_CAMPAIGN_QUEUED = 150_000
NPAS = (212, 312, 415, 617, 713, 202)
"""Area codes of the called numbers: +1 NPA 2xx-xxxx, valid NANP numbers."""


EVENTS_PER_CALL = 17.6
"""The mean number of events a call makes with these profiles, as the fill itself measured."""


def _pick(draw: str, names: list[str], shares: list[float]) -> str:
    """A CASE choosing one of the SQL expressions `names` by their `shares` of the uniform `draw`."""
    cases, total = [], 0.0
    for name, share in zip(names[:-1], shares[:-1]):
        total += share
        cases.append(f"WHEN {draw} < {total:.4f} THEN {name}")
    return f"CASE {' '.join(cases)} ELSE {names[-1]} END"


def _outcome(draw: str) -> str:
    """An attempt's outcome by its carrier's profile (`t`: the carrier's 1-based index)."""
    names = ["'completed'", "'busy'", "'no-answer'", "'failed'"]
    per_carrier = [
        f"WHEN {i} THEN {_pick(draw, names, [c.completed, c.busy, c.no_answer, c.failed])}"
        for i, c in enumerate(CARRIERS, start=1)
    ]
    return f"CASE t {' '.join(per_carrier)} END"


def _attempts_sql() -> str:
    """gen_attempts for calls lo..hi-1 of `total`: up to three attempts a call, the next only
    after an unanswered one and within the campaign's max_attempts, RETRY_BACKOFF_S later."""
    campaigns = _pick("r[2]", [str(i) for i in range(1, len(CAMPAIGNS) + 1)] + ["0"],
                      [c.share for c in CAMPAIGNS] + [1 - sum(c.share for c in CAMPAIGNS)])  # fmt: skip
    carrier = _pick("r[1]", [str(i) for i in range(1, len(CARRIERS) + 1)], [c.share for c in CARRIERS])
    verdicts = ["'human'", "'machine_start'", "'machine_end_beep'", "'machine_end_silence'", "'unknown'"]
    verdict = _pick("r[6]", verdicts,
                    [0.62, 0.08, 0.18, 0.07, 0.05])  # fmt: skip
    digits = _pick("r[7]", ["'1'", "'2'", "'9'", "'0'", "'#'"], [0.55, 0.25, 0.08, 0.07, 0.05])
    return f"""
    INSERT INTO gen_attempts
    WITH drawn AS (
        SELECT i, r, gen_random_uuid() AS call_id, {carrier} AS t, {campaigns} AS k,
               day_start + make_interval(secs => {HOURS_A_DAY} * 3600
                                                 * (f + 0.6 / (2 * pi()) * sin(2 * pi() * f))) AS t0
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
             LATERAL (SELECT array_agg(random()) AS r FROM generate_series(1, 7)
                      WHERE i IS NOT NULL) AS draws,
             LATERAL (SELECT floor(i::float8 * %(days)s / %(total)s)::int AS d) AS day,
             LATERAL (SELECT i::float8 * %(days)s / %(total)s - d AS f,
                             %(end)s::timestamptz
                               - make_interval(days => %(days)s - 1 - d, hours => {HOURS_A_DAY})
                               AS day_start) AS within
    ), calls AS (
        SELECT drawn.*, coalesce((%(max_attempts)s::int[])[k], 1) AS max_attempts,
               coalesce((%(amd)s::bool[])[k], false) AS amd,
               coalesce((%(gather)s::bool[])[k], false) AS gather,
               ARRAY[{_outcome("r[3]")}, {_outcome("r[4]")}, {_outcome("r[5]")}] AS outcomes
        FROM drawn
    ), tries AS (
        SELECT calls.*, n, outcomes[n] AS outcome, n < max_attempts AND outcomes[n] <> 'completed' AS retried
        FROM calls, generate_series(1, 3) AS n
        WHERE n <= max_attempts AND (n = 1 OR outcomes[n - 1] <> 'completed')
          AND (n < 3 OR outcomes[2] <> 'completed')
    )
    SELECT gen_random_uuid(), call_id, i, n, k, (%(carriers)s::text[])[t], t,
           'n' || (1 + (i + n) %% 3), CASE (i + n) %% 3 WHEN 1 THEN 'ari' ELSE 'ami' END,
           t0 + make_interval(secs => {RETRY_BACKOFF_S} * (n - 1)), outcome, retried,
           greatest(200, (%(pdd)s::int[])[t] * (0.4 + 1.2 * random()))::int, 20 + (random() * 60)::int,
           random() < 0.7, (2000 + random() * 9000)::int, (8000 + random() * 50000)::int,
           CASE WHEN amd AND outcome = 'completed' THEN {verdict} END,
           CASE WHEN gather AND outcome = 'completed' AND random() < 0.8 THEN {digits} END
    FROM tries
    """


GEN_ATTEMPTS = """
    CREATE TEMP TABLE gen_attempts (
        id uuid, call_id uuid, i bigint, number int, k int, trunk text, t int, node text, driver text,
        started_at timestamptz, outcome text, retried boolean, pdd_ms int, originate_ms int,
        rang boolean, answer_ms int, talk_ms int, verdict text, digits text
    ) ON COMMIT DELETE ROWS
"""


def _times_view() -> str:
    """When each step of an attempt happened (sent, channel made, far end ringing, answered,
    ended), and how a call still going at the end of the history stands then (`live`)."""
    causes = "ARRAY[" + ",".join(str(c.failure_cause) for c in CARRIERS) + "]"
    texts = "ARRAY[" + ",".join(f"'{c.failure_text}'" for c in CARRIERS) + "]"
    return f"""
    CREATE TEMP VIEW gen_times AS
    SELECT t.*, ended >= now AS live,
           CASE WHEN ended < now THEN outcome WHEN outcome = 'completed' AND answered < now THEN 'in-progress'
                WHEN ringing AND rings < now THEN 'ringing' ELSE 'initiated' END AS status
    FROM (
    SELECT a.*, c.now, started_at + interval '25 ms' AS sent,
           started_at + make_interval(secs => (25 + originate_ms) / 1000.0) AS made,
           started_at + make_interval(secs => (25 + originate_ms + pdd_ms) / 1000.0) AS rings,
           started_at + make_interval(secs => (25 + originate_ms + pdd_ms + answer_ms) / 1000.0) AS answered,
           started_at + make_interval(secs => (25 + originate_ms + pdd_ms
               + CASE outcome WHEN 'completed' THEN answer_ms + talk_ms WHEN 'no-answer' THEN 30000
                              ELSE 0 END) / 1000.0) AS ended,
           'PJSIP/' || trunk || '-' || lpad(to_hex(i % 1048576), 8, '0') AS channel,
           outcome = 'no-answer' OR (outcome = 'completed' AND rang) AS ringing,
           CASE outcome WHEN 'completed' THEN 16 WHEN 'busy' THEN 17 WHEN 'no-answer' THEN 19
                        ELSE ({causes})[t] END AS cause,
           CASE outcome WHEN 'completed' THEN 'Normal Clearing' WHEN 'busy' THEN 'User busy'
                        WHEN 'no-answer' THEN 'User alerting, no answer' ELSE ({texts})[t] END AS cause_text,
           CASE outcome WHEN 'completed' THEN 'ANSWER' WHEN 'busy' THEN 'BUSY'
                        WHEN 'no-answer' THEN 'NOANSWER'
                        ELSE 'CHANUNAVAIL' END AS dial_status,
           CASE outcome WHEN 'completed' THEN '4' WHEN 'busy' THEN '5' WHEN 'no-answer' THEN '3' ELSE '0' END
               AS reason
    FROM gen_attempts a, gen_clock c
    ) AS t
    """


# Every event of an attempt, as call_events holds them (docs/operations.md, "Grafana"): the
# status transitions, the dispatcher's claim, the node's channel events under its driver, the
# dialplan's reports and the facts (machine_detection, digits) they make.
EVENTS_SQL = """
    INSERT INTO call_events (event_uid, call_id, attempt_id, at, type, data)
    SELECT CASE WHEN e.type IN ('status', 'digits', 'machine_detection') THEN NULL ELSE gen_random_uuid() END,
           a.call_id, a.id, e.at, e.type, e.data
    FROM gen_times a, LATERAL (VALUES
        (true, started_at, 'status',
            jsonb_build_object('status', 'initiated', 'attempt', number, 'node', node)),
        (true, started_at, 'dispatch.claimed',
            jsonb_build_object('node', node, 'attempt', number, 'trunk', trunk,
            'sent_at', to_char(sent AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))),
        (true, made, driver || '.Newchannel', jsonb_build_object('Channel', channel, 'ChannelState', '0',
            'ChannelStateDesc', 'Down', 'node', node)),
        (true, made + interval '1 ms', driver || '.DialBegin', jsonb_build_object('node', node)),
        (ringing, rings, driver || '.Newstate', jsonb_build_object('Channel', channel, 'ChannelState', '5',
            'ChannelStateDesc', 'Ringing', 'node', node)),
        (ringing, rings, driver || '.DialState', jsonb_build_object('DialStatus', 'RINGING', 'node', node)),
        (ringing, rings + interval '1 us', 'status', '{"status": "ringing"}'::jsonb),
        (outcome = 'completed', answered, driver || '.Newstate', jsonb_build_object('Channel', channel,
            'ChannelState', '6', 'ChannelStateDesc', 'Up', 'node', node)),
        (outcome = 'completed', answered + interval '1 us', 'status', '{"status": "in-progress"}'::jsonb),
        (outcome = 'completed', answered + interval '40 ms', driver || '.UserEvent', jsonb_build_object(
            'Channel', channel, 'ChannelState', '6', 'ChannelStateDesc', 'Up', 'UserEvent', 'SespclAnswered',
            'node', node)),
        (verdict IS NOT NULL, answered + interval '2500 ms', driver || '.UserEvent', jsonb_build_object(
            'Channel', channel, 'UserEvent', 'SespclMachine', 'node', node,
            'Status', CASE WHEN verdict = 'human' THEN 'HUMAN' WHEN verdict = 'unknown' THEN 'NOTSURE'
                           ELSE 'MACHINE' END,
            'End', CASE verdict WHEN 'machine_end_beep' THEN 'beep' WHEN 'machine_end_silence' THEN 'silence'
                                ELSE '' END)),
        (verdict IS NOT NULL, answered + interval '2500 ms 1 us', 'machine_detection',
            jsonb_build_object('answered_by', verdict)),
        (digits IS NOT NULL, answered + interval '6 s', driver || '.UserEvent', jsonb_build_object(
            'Channel', channel, 'UserEvent', 'SespclDigits', 'Digits', digits, 'node', node)),
        (digits IS NOT NULL, answered + interval '6 s 1 us', 'digits', jsonb_strip_nulls(jsonb_build_object(
            'digits', digits, 'dnc', CASE WHEN digits = '9' THEN true END))),
        (outcome = 'completed', ended - interval '300 ms', driver || '.UserEvent', jsonb_build_object(
            'Channel', channel, 'UserEvent', 'SespclPlaybackDone', 'Status', 'SUCCESS', 'node', node)),
        (outcome <> 'completed', ended, driver || '.DialEnd', jsonb_build_object('DialStatus', dial_status,
            'node', node)),
        (true, ended + interval '2 ms', driver || '.Hangup', jsonb_build_object('Channel', channel,
            'Cause', cause::text, 'Cause-txt', cause_text, 'node', node)),
        (true, CASE WHEN outcome = 'completed' THEN answered ELSE ended END + interval '5 ms',
            driver || '.OriginateResponse', jsonb_build_object(
            'Response', CASE WHEN outcome = 'completed' THEN 'Success' ELSE 'Failure' END, 'Reason', reason)),
        (NOT retried, ended + interval '2 ms 1 us', 'status', jsonb_build_object('status', outcome,
            'cause', cause, 'cause_text', cause_text)),
        (retried, ended + interval '2 ms 1 us', 'status', jsonb_build_object('status', 'queued',
            'retry_after', outcome, 'retry_at', ended + interval '600 s', 'cause', cause,
            'cause_text', cause_text))
    ) AS e(keep, at, type, data)
    WHERE e.keep AND e.at < a.now
    ORDER BY e.at
"""

ATTEMPTS_SQL = """
    INSERT INTO call_attempts (id, call_id, number, node, trunk, status, channel, started_at, answered_at,
                               ended_at, hangup_cause, hangup_cause_text, owner)
    SELECT id, call_id, number, node, trunk, status, channel, started_at,
           CASE WHEN outcome = 'completed' AND answered < now THEN answered END,
           CASE WHEN NOT live THEN ended END, CASE WHEN NOT live THEN cause END,
           CASE WHEN NOT live THEN cause_text END, 'bench'
    FROM gen_times
"""

# A call is as its last attempt left it: back in the queue when that one is to be tried again.
CALLS_SQL = """
    INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s, campaign_id,
                       status, attempt_count, hangup_cause, hangup_cause_text, created_at, updated_at,
                       not_before, answered_at, ended_at, digits, answered_by)
    SELECT call_id, '+1' || (%(npas)s::int[])[1 + i %% 6] || (2000000 + i / 6)::text, trunk, %(prompt)s,
           'en-us', %(audio)s, 30, (%(campaigns)s::uuid[])[k],
           CASE WHEN retried THEN 'queued' ELSE status END,
           number, CASE WHEN NOT live THEN cause END, CASE WHEN NOT live THEN cause_text END,
           first_start - interval '20 min', least(ended, now), first_start - interval '20 min',
           CASE WHEN outcome = 'completed' AND answered < now THEN answered END,
           CASE WHEN NOT live AND NOT retried THEN ended END, digits, verdict
    FROM (SELECT DISTINCT ON (call_id) *, min(started_at) OVER (PARTITION BY call_id) AS first_start
          FROM gen_times ORDER BY call_id, number DESC) AS last_attempt
"""


def fill_chunk(conn: psycopg.Connection[Any], params: dict[str, Any]) -> int:
    """One chunk of calls, their attempts and events, in one transaction; returns the events made."""
    with conn.transaction():
        conn.execute(_attempts_sql(), params)
        conn.execute("DELETE FROM gen_attempts WHERE started_at >= %(end)s", params)
        conn.execute(CALLS_SQL, params)
        conn.execute(ATTEMPTS_SQL)
        return conn.execute(EVENTS_SQL, params).rowcount


def fill(
    conn: psycopg.Connection[Any],
    events: int,
    days: int,
    campaigns: list[UUID],
    report: Callable[[int], None],
) -> int:
    """About `events` events over `days` days ending two minutes ago; returns how many."""
    end = datetime.now().astimezone() - timedelta(minutes=2)
    conn.execute(GEN_ATTEMPTS)
    conn.execute("CREATE TEMP TABLE gen_clock AS SELECT %s::timestamptz AS now", (end,))
    conn.execute(_times_view())
    total = round(events / EVENTS_PER_CALL)
    base = {
        "total": total, "days": days, "end": end, "carriers": [c.name for c in CARRIERS],
        "pdd": [c.pdd_ms for c in CARRIERS], "max_attempts": [c.max_attempts for c in CAMPAIGNS],
        "amd": [c.amd for c in CAMPAIGNS], "gather": [c.gather for c in CAMPAIGNS], "npas": list(NPAS),
        "campaigns": campaigns, "prompt": PROMPT, "audio": AUDIO_HASH,
    }  # fmt: skip
    made = 0
    for lo in range(0, total, CHUNK_CALLS):
        made += fill_chunk(conn, base | {"lo": lo, "hi": min(lo + CHUNK_CALLS, total)})
        report(made)
    return made


def queue_running_campaign(conn: psycopg.Connection[Any], campaign: UUID) -> int:
    """RUNNING_CAMPAIGN_QUEUED calls of `campaign` still waiting, uploaded an hour ago."""
    return conn.execute(
        """
        INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s, campaign_id,
                           created_at, not_before)
        SELECT gen_random_uuid(), '+1' || (%(npas)s::int[])[1 + i %% 6] || (2000000 + i / 6)::text,
               %(trunk)s, %(prompt)s, 'en-us', %(audio)s, 30, %(campaign)s, now() - interval '1 hour',
               now() - interval '1 hour'
        FROM generate_series(%(first)s::bigint, %(first)s::bigint + %(count)s - 1) AS i
        """,
        {
            "npas": list(NPAS),
            "trunk": CARRIERS[0].name,
            "prompt": PROMPT,
            "audio": AUDIO_HASH,
            "campaign": campaign,
            "first": 6_000_000,
            "count": RUNNING_CAMPAIGN_QUEUED,
        },
    ).rowcount
