"""What `sespcl report` reads of a campaign: its figures aggregated by PostgreSQL (a campaign may
hold a million calls; only counts come back), and its calls streamed through a server-side
cursor, a batch at a time, for the CSV."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import psycopg
from psycopg.rows import DictRow

from orchestrator.domain.call import CallStatus
from orchestrator.domain.errors import NotFound
from orchestrator.domain.report import (
    CallLine,
    CampaignFigures,
    CampaignHeading,
    DigitsCount,
    EndedInMinute,
    HourAttempts,
    StatusTotal,
)
from orchestrator.persistence.errors import port_error

CALLS_PER_FETCH = 5_000
"""Rows the CSV's cursor brings over at a time: memory stays flat whatever the campaign holds."""

# Each walks the campaign's calls through calls_campaign_page (campaign_id, created_at, id).
_TOTALS_SQL = """
    SELECT status, count(*) AS calls, count(*) FILTER (WHERE attempt_count > 0) AS dialed,
           count(answered_at) AS answered
    FROM calls WHERE campaign_id = %s GROUP BY status
"""
_ENDED_SQL = """
    SELECT date_trunc('minute', ended_at, 'UTC') AS minute, status, count(*) AS calls
    FROM calls WHERE campaign_id = %(campaign)s AND ended_at IS NOT NULL AND status = ANY(%(final)s)
    GROUP BY 1, 2
"""
# Attempts, not calls: a call retried after busy is dialed twice, perhaps hours apart.
_HOURS_SQL = """
    SELECT extract(hour FROM a.started_at AT TIME ZONE 'UTC')::int AS hour, count(*) AS attempts,
           count(a.answered_at) AS answered
    FROM calls c JOIN call_attempts a ON a.call_id = c.id
    WHERE c.campaign_id = %s AND a.ended_at IS NOT NULL
    GROUP BY 1
"""
# The keys pressed, and the answered calls where none was.
_DIGITS_SQL = """
    SELECT digits, count(*) AS calls FROM calls
    WHERE campaign_id = %s AND (digits IS NOT NULL OR answered_at IS NOT NULL)
    GROUP BY digits
"""
_CALLS_SQL = """
    SELECT to_number, status, answered_by, digits, attempt_count, answered_at, ended_at, hangup_cause
    FROM calls WHERE campaign_id = %s ORDER BY created_at, id
"""


class ReportStore:
    """Reads one campaign's report on the CLI's connection, in one read-only snapshot, so the
    chart's panels and title agree with each other while the campaign's calls go on."""

    def __init__(self, conn: psycopg.Connection[DictRow]) -> None:
        # Settable only before the connection's first statement, which opens the transaction.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        self._conn = conn

    def heading(self, campaign_id: UUID) -> CampaignHeading:
        """NotFound (code no-such-campaign) for a campaign that does not exist."""
        try:
            row = self._conn.execute(
                "SELECT id, name, status FROM campaigns WHERE id = %s", (campaign_id,)
            ).fetchone()
        except psycopg.Error as exc:
            raise port_error(exc) from exc
        if row is None:
            raise NotFound(f"no campaign {campaign_id}", code="no-such-campaign")
        return CampaignHeading(id=row["id"], name=row["name"], status=row["status"])

    def figures(self, campaign_id: UUID) -> CampaignFigures:
        heading = self.heading(campaign_id)
        final = [s.value for s in CallStatus if s.is_final]
        try:
            totals = self._conn.execute(_TOTALS_SQL, (campaign_id,)).fetchall()
            ended = self._conn.execute(_ENDED_SQL, {"campaign": campaign_id, "final": final}).fetchall()
            hours = self._conn.execute(_HOURS_SQL, (campaign_id,)).fetchall()
            digits = self._conn.execute(_DIGITS_SQL, (campaign_id,)).fetchall()
        except psycopg.Error as exc:
            raise port_error(exc) from exc
        return CampaignFigures(
            heading=heading,
            totals=[
                StatusTotal(CallStatus(r["status"]), int(r["calls"]), int(r["dialed"]), int(r["answered"]))
                for r in totals
            ],
            ended=[EndedInMinute(r["minute"], CallStatus(r["status"]), int(r["calls"])) for r in ended],
            hours=[HourAttempts(int(r["hour"]), int(r["attempts"]), int(r["answered"])) for r in hours],
            digits=[DigitsCount(r["digits"], int(r["calls"])) for r in digits],
        )

    def call_lines(self, campaign_id: UUID) -> Iterator[CallLine]:
        """The campaign's calls in the order they were added, CALLS_PER_FETCH at a time from a
        server-side cursor (closed when the iteration ends or is abandoned)."""
        try:
            with self._conn.cursor(name="sespcl_report_calls") as cur:
                cur.itersize = CALLS_PER_FETCH
                cur.execute(_CALLS_SQL, (campaign_id,))
                for row in cur:
                    yield CallLine(
                        number=row["to_number"],
                        status=CallStatus(row["status"]),
                        answered_by=row["answered_by"],
                        digits=row["digits"],
                        attempts=int(row["attempt_count"]),
                        answered_at=row["answered_at"],
                        ended_at=row["ended_at"],
                        cause=row["hangup_cause"],
                    )
        except psycopg.Error as exc:
            raise port_error(exc) from exc
