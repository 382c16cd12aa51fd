"""A small farm's hour, written as the stack writes it, for the dashboards' test: two trunks,
two nodes and a campaign of its own (named afresh each run), calls with each outcome, their
attempts and the events each records (status transitions, the dispatcher's claim, the node's
channel events, digits and machine-detection facts, hangups with their Q.850 causes). The hour
lies in the past, where the stack's own calls are not, so a panel over it sees these calls only;
two calls are live now and three wait in the campaign's queue.

Everything is inserted in the caller's transaction, which the test rolls back: nothing stays."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
import psycopg
from psycopg.types.json import Jsonb

HOUR_START = datetime(2019, 3, 14, 9, 0, tzinfo=UTC)
CAUSES = {
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    34: "Circuit/channel congestion",
    38: "Network out of order",
}


@dataclass(frozen=True)
class Attempt:
    """One dial: when, where, how it ended."""

    minute: float
    trunk: str
    node: str
    outcome: str
    cause: int
    pdd_s: float | None = None
    """None: the far end never rang."""
    talk_s: float | None = None
    """None: not answered."""
    retried: bool = False

    @property
    def started(self) -> datetime:
        return HOUR_START + timedelta(minutes=self.minute)

    @property
    def answered(self) -> datetime | None:
        if self.talk_s is None:
            return None
        return self.started + timedelta(seconds=(self.pdd_s or 0) + 3)

    @property
    def ended(self) -> datetime:
        if self.answered is not None and self.talk_s is not None:
            return self.answered + timedelta(seconds=self.talk_s)
        return self.started + timedelta(
            seconds=(self.pdd_s or 0) + (30 if self.outcome == "no-answer" else 1)
        )


@dataclass(frozen=True)
class Call:
    attempts: tuple[Attempt, ...]
    in_campaign: bool = True
    digits: str | None = None
    answered_by: str | None = None

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]


@dataclass
class Story:
    """The names this run's rows carry (fresh each run), and the calls it wrote."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    campaign_id: uuid.UUID = field(default_factory=uuid.uuid4)
    calls: list[Call] = field(default_factory=list)
    east: str = field(init=False)
    west: str = field(init=False)
    nodes: tuple[str, str] = field(init=False)
    campaign_name: str = field(init=False)
    dispatcher: str = field(init=False)

    def __post_init__(self) -> None:
        self.east, self.west = f"dash-{self.tag}-east", f"dash-{self.tag}-west"
        self.nodes = (f"d{self.tag}a", f"d{self.tag}b")
        self.campaign_name = f"Dashboards test {self.tag}: appointment reminders"
        self.dispatcher = f"dash-{self.tag}"

    def ended_attempts(self) -> list[Attempt]:
        return [a for call in self.calls for a in call.attempts]


def the_hours_calls(story: Story) -> list[Call]:
    east, west, (na, nb) = story.east, story.west, story.nodes
    return [
        Call((Attempt(2, east, na, "completed", 16, pdd_s=2.0, talk_s=40),), digits="1", answered_by="human"),
        Call(
            (Attempt(4.5, east, nb, "completed", 16, pdd_s=1.5, talk_s=20),), answered_by="machine_end_beep"
        ),
        Call((Attempt(7, east, na, "busy", 17),)),
        Call((Attempt(11, west, nb, "no-answer", 19, pdd_s=3.0),)),
        Call((Attempt(13, west, na, "failed", 34),), in_campaign=False),
        Call(
            (Attempt(16, west, nb, "completed", 16, pdd_s=2.5, talk_s=60),), digits="1", answered_by="human"
        ),
        Call(
            (
                Attempt(20, east, na, "failed", 38, retried=True),
                Attempt(30, east, nb, "completed", 16, pdd_s=2.2, talk_s=35),
            ),
            digits="2",
        ),
    ]


def e164(n: int) -> str:
    number = f"+1415{200 + n // 10000:03d}{n % 10000:04d}"
    assert phonenumbers.is_valid_number(phonenumbers.parse(number)), number
    return number


Db = psycopg.Connection[Any]
_CALL = """
    INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s,
                       campaign_id, status, attempt_count, created_at, not_before, answered_at, ended_at,
                       digits, answered_by, hangup_cause, hangup_cause_text)
    VALUES (%(id)s, %(to)s, %(trunk)s,
            'Your appointment is tomorrow at 10. Press 1 to confirm, 2 to cancel.', 'en-us',
            repeat('e', 64), 30, %(campaign)s, %(status)s, %(attempts)s, coalesce(%(created)s, now()),
            coalesce(%(created)s, now()), %(answered)s, %(ended)s, %(digits)s, %(answered_by)s,
            %(cause)s, %(cause_text)s)
"""
_ATTEMPT = """
    INSERT INTO call_attempts (id, call_id, number, node, trunk, status, started_at, answered_at, ended_at,
                               hangup_cause, hangup_cause_text, owner)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_LIVE_ATTEMPT = """
    INSERT INTO call_attempts (id, call_id, number, node, trunk, status, started_at, owner)
    VALUES (%s, %s, 1, %s, %s, %s, now() - interval '30 seconds', %s)
"""
_EVENT = "INSERT INTO call_events (call_id, attempt_id, at, type, data) VALUES (%s, %s, %s, %s, %s)"


def write(db: Db, story: Story) -> None:
    """The trunks, nodes, dispatcher, campaign and every call, in the caller's transaction."""
    for trunk in (story.east, story.west):
        db.execute("INSERT INTO trunks (name, host) VALUES (%s, %s)", (trunk, f"sip.{trunk}.example"))
    for node in story.nodes:
        db.execute(
            "INSERT INTO nodes (name, ami_host, ami_secret, state, pace_cps, version, last_seen_at) "
            "VALUES (%s, '10.9.8.7', 'not-a-real-secret', 'up', 25, '22.5.0', now() - interval '2 seconds')",
            (node,),
        )
    db.execute(
        "INSERT INTO dispatchers (id, host, pid, heartbeat_at) VALUES (%s, 'dialer-7', 4242, now() - "
        "interval '3 seconds')",
        (story.dispatcher,),
    )
    db.execute(
        "INSERT INTO campaigns (id, name, tts_template, tts_voice, max_attempts) "
        "VALUES (%s, %s, 'x', 'en-us', 2)",
        (story.campaign_id, story.campaign_name),
    )
    story.calls = the_hours_calls(story)
    for n, call in enumerate(story.calls):
        _write_call(db, story, call, n)
    _write_live_and_queued(db, story)


def _write_call(db: Db, story: Story, call: Call, n: int) -> None:
    call_id = uuid.uuid4()
    last = call.last
    _insert_call(
        db,
        call_id,
        n,
        last.trunk,
        story.campaign_id if call.in_campaign else None,
        last.outcome,
        attempts=len(call.attempts),
        created=call.attempts[0].started - timedelta(minutes=5),
        answered=last.answered,
        ended=last.ended,
        digits=call.digits,
        answered_by=call.answered_by,
        cause=last.cause,
        cause_text=CAUSES[last.cause],
    )
    for number, attempt in enumerate(call.attempts, start=1):
        attempt_id = uuid.uuid4()
        db.execute(
            _ATTEMPT,
            (
                attempt_id,
                call_id,
                number,
                attempt.node,
                attempt.trunk,
                attempt.outcome,
                attempt.started,
                attempt.answered,
                attempt.ended,
                attempt.cause,
                CAUSES[attempt.cause],
                story.dispatcher,
            ),
        )
        for at, kind, data in _events(call, attempt, number):
            db.execute(_EVENT, (call_id, attempt_id, at, kind, Jsonb(data)))


def _events(call: Call, a: Attempt, number: int) -> list[tuple[datetime, str, dict[str, Any]]]:
    """What the stack records of one attempt, in order (docs/operations.md, "Grafana")."""
    tick = timedelta(microseconds=1)
    channel = f"PJSIP/{a.trunk}-0000{number:04x}"
    events: list[tuple[datetime, str, dict[str, Any]]] = [
        (a.started, "status", {"status": "initiated", "attempt": number, "node": a.node}),
        (
            a.started,
            "dispatch.claimed",
            {
                "node": a.node,
                "attempt": number,
                "trunk": a.trunk,
                "sent_at": (a.started + timedelta(milliseconds=30)).isoformat(),
            },
        ),
        (
            a.started + timedelta(milliseconds=80),
            "ami.Newchannel",
            {"Channel": channel, "ChannelState": "0", "ChannelStateDesc": "Down", "node": a.node},
        ),
    ]
    if a.pdd_s is not None:
        rang = a.started + timedelta(seconds=a.pdd_s)
        events += [
            (rang, "ami.Newstate", {"Channel": channel, "ChannelStateDesc": "Ringing", "node": a.node}),
            (rang + tick, "status", {"status": "ringing"}),
        ]
    if a.answered is not None:
        events.append((a.answered + tick, "status", {"status": "in-progress"}))
        if call.answered_by:
            events.append(
                (a.answered + timedelta(seconds=2), "machine_detection", {"answered_by": call.answered_by})
            )
        if call.digits:
            events.append((a.answered + timedelta(seconds=6), "digits", {"digits": call.digits}))
    events.append(
        (
            a.ended,
            "ami.Hangup",
            {"Channel": channel, "Cause": str(a.cause), "Cause-txt": CAUSES[a.cause], "node": a.node},
        )
    )
    final: dict[str, Any] = {"status": a.outcome, "cause": a.cause, "cause_text": CAUSES[a.cause]}
    if a.retried:
        final = {
            "status": "queued",
            "retry_after": a.outcome,
            "cause": a.cause,
            "cause_text": CAUSES[a.cause],
            "retry_at": (a.ended + timedelta(minutes=10)).isoformat(),
        }
    events.append((a.ended + tick, "status", final))
    return events


def _write_live_and_queued(db: Db, story: Story) -> None:
    """Now: one call ringing on east (first node), one talking on west (second node), both
    started 30 s ago; three calls of the campaign still queued."""
    for n, (trunk, node, status) in enumerate(
        ((story.east, story.nodes[0], "ringing"), (story.west, story.nodes[1], "in-progress")), start=100
    ):
        call_id, attempt_id = uuid.uuid4(), uuid.uuid4()
        _insert_call(db, call_id, n, trunk, story.campaign_id, status, attempts=1)
        db.execute(_LIVE_ATTEMPT, (attempt_id, call_id, node, trunk, status, story.dispatcher))
    for n in range(200, 203):
        _insert_call(db, uuid.uuid4(), n, story.east, story.campaign_id, "queued")


def _insert_call(
    db: Db, call_id: uuid.UUID, n: int, trunk: str, campaign: uuid.UUID | None, status: str, **more: Any
) -> None:
    """A call to the n-th number; `more`: attempts, created, answered, ended, digits, answered_by,
    cause, cause_text (absent: none yet; created: now)."""
    absent = dict.fromkeys(("created", "answered", "ended", "digits", "answered_by", "cause", "cause_text"))
    fields = {
        "id": call_id,
        "to": e164(n),
        "trunk": trunk,
        "campaign": campaign,
        "status": status,
        "attempts": 0,
    }
    db.execute(_CALL, fields | absent | more)
