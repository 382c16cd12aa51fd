"""The dispatcher's transition store on the real database: a batch holding several transitions
of one call, a retry, a step backwards and an attempt another dispatcher owns, in one apply."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from orchestrator.domain.attempt import Transition
from orchestrator.domain.call import CallStatus
from orchestrator.domain.errors import StoreRefused
from orchestrator.domain.facts import CallFact
from orchestrator.domain.interaction import AnsweredBy, DigitReply, Gather, Interaction
from orchestrator.domain.outcome import Ending
from orchestrator.domain.records import StoredStatus
from orchestrator.persistence.db import open_pool
from orchestrator.persistence.dispatch import DispatchStore

Db = psycopg.Connection[dict[str, Any]]
TRUNK = "store-test"  # its calls are retried minutes later at the soonest: never claimed here
GONE = "store-test-removed"  # no trunk row: a trunk removed while its calls were live


def _seed(db: Db, owners: dict[str, str], trunk: str = TRUNK) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    """A call in `initiated` with one live attempt per key, the attempt owned as given."""
    text = f"store test {uuid.uuid4()}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    db.execute(
        "INSERT INTO audio_assets (hash, engine, voice, text, status, path) "
        "VALUES (%s, 'test', 'test', %s, 'ready', '/nowhere')",
        (digest, text),
    )
    ids: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    for n, (key, owner) in enumerate(owners.items()):
        call, attempt = uuid.uuid4(), uuid.uuid4()
        db.execute(
            "INSERT INTO calls (id, to_number, trunk, tts_text, tts_voice, audio_hash, ring_timeout_s, "
            "status, attempt_count, max_attempts, retry_on) "
            "VALUES (%s, %s, %s, %s, 'test', %s, 20, 'initiated', 1, 3, '{busy}')",
            (call, f"+1555010{n:04d}", trunk, text, digest),
        )
        db.execute(
            "INSERT INTO call_attempts (id, call_id, number, node, trunk, status, owner) "
            "VALUES (%s, %s, 1, 'n1', %s, 'initiated', %s)",
            (attempt, call, trunk, owner),
        )
        ids[key] = (call, attempt)
    return ids


def _status_events(db: Db, call_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT data FROM call_events WHERE call_id = %s AND type = 'status' ORDER BY at, id", (call_id,)
    ).fetchall()
    return [r["data"] for r in rows]


@pytest.fixture
async def stores(db: Db) -> AsyncIterator[Callable[[], Awaitable[DispatchStore]]]:
    """Stores for dispatchers that heartbeat (or the stack's dispatcher would adopt their
    attempts as orphans); afterwards nothing of the test is left live for it to adopt or sweep."""
    pool = await open_pool(os.environ["DATABASE_URL"], name="sespcl-test")
    owners: list[str] = []
    db.execute("INSERT INTO trunks (name, host) VALUES (%s, '192.0.2.1') ON CONFLICT DO NOTHING", (TRUNK,))

    async def new_store() -> DispatchStore:
        store = DispatchStore(pool, f"store-test-{uuid.uuid4()}")
        await store.heartbeat("store-test", os.getpid())
        owners.append(store.owner)
        return store

    try:
        yield new_store
    finally:
        db.execute(
            "UPDATE call_attempts SET ended_at = now(), status = 'failed' "
            "WHERE trunk = ANY(%s) AND ended_at IS NULL",
            ([TRUNK, GONE],),
        )
        db.execute(
            "UPDATE calls SET status = 'failed', ended_at = now() WHERE trunk = ANY(%s) "
            "AND status NOT IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')",
            ([TRUNK, GONE],),
        )
        db.execute("DELETE FROM trunks WHERE name = %s", (TRUNK,))
        db.execute("DELETE FROM dispatchers WHERE id = ANY(%s)", (owners,))
        await pool.close()


async def test_one_apply_stores_each_calls_transitions_in_order_and_refuses_the_rest(
    db: Db, stores: Callable[[], Awaitable[DispatchStore]]
) -> None:
    me, other = await stores(), (await stores()).owner
    ids = _seed(db, {"a": me.owner, "b": me.owner, "c": me.owner, "d": other})
    t0 = datetime.now(UTC)
    retry_at = t0 + timedelta(minutes=5)

    def t(key: str, status: CallStatus, s: float, **kw: Any) -> Transition:
        call, attempt = ids[key]
        return Transition(attempt, call, status, t0 + timedelta(seconds=s), **kw)

    batch = [
        t("a", CallStatus.RINGING, 1, channel="PJSIP/demo-1"),
        t("b", CallStatus.RINGING, 1),
        t("c", CallStatus.IN_PROGRESS, 1, answered=True),
        t("d", CallStatus.RINGING, 1),  # not ours: neither row moves
        t("a", CallStatus.IN_PROGRESS, 2, answered=True),
        t("b", CallStatus.BUSY, 2, ending=Ending(CallStatus.BUSY, 17, "User busy"), retry_at=retry_at),
        t("c", CallStatus.RINGING, 2),  # backwards: refused
        t("a", CallStatus.COMPLETED, 9, ending=Ending(CallStatus.COMPLETED, 16, "Normal Clearing")),
    ]
    stored = [s.status if s else None for s in await me.apply(batch)]
    assert stored == [
        CallStatus.RINGING,
        CallStatus.RINGING,
        CallStatus.IN_PROGRESS,
        None,
        CallStatus.IN_PROGRESS,
        CallStatus.QUEUED,
        None,
        CallStatus.COMPLETED,
    ]
    # The same final status again changes nothing.
    assert await me.apply([batch[-1]]) == [None]

    def row(table: str, key: str) -> dict[str, Any]:
        call, attempt = ids[key]
        found = db.execute(
            f"SELECT * FROM {table} WHERE id = %s", (call if table == "calls" else attempt,)
        ).fetchone()
        assert found is not None
        return found

    a_call, a_attempt = row("calls", "a"), row("call_attempts", "a")
    assert a_call["status"] == "completed" and a_attempt["status"] == "completed"
    assert a_call["answered_at"] == t0 + timedelta(seconds=2) == a_attempt["answered_at"]
    assert a_call["ended_at"] == t0 + timedelta(seconds=9) == a_attempt["ended_at"]
    assert (a_call["hangup_cause"], a_call["hangup_cause_text"]) == (16, "Normal Clearing")
    assert a_attempt["channel"] == "PJSIP/demo-1"

    b_call, b_attempt = row("calls", "b"), row("call_attempts", "b")
    assert b_call["status"] == "queued" and b_call["not_before"] == retry_at
    assert b_call["status_reason"] == "retrying after busy" and b_call["ended_at"] is None
    assert b_attempt["status"] == "busy" and b_attempt["ended_at"] == t0 + timedelta(seconds=2)
    assert b_attempt["hangup_cause"] == 17

    # Each change of a call row, and only those, has its status event, stored with it.
    assert [e["status"] for e in _status_events(db, ids["a"][0])] == ["ringing", "in-progress", "completed"]
    assert _status_events(db, ids["a"][0])[-1] == {
        "status": "completed",
        "cause": 16,
        "cause_text": "Normal Clearing",
    }
    assert [e["status"] for e in _status_events(db, ids["c"][0])] == ["in-progress"]
    assert _status_events(db, ids["d"][0]) == []
    assert row("calls", "c")["status"] == "in-progress"
    assert row("call_attempts", "c")["status"] == "in-progress"
    assert row("calls", "d")["status"] == "initiated"
    assert row("call_attempts", "d")["status"] == "initiated"


async def test_a_batch_that_fails_part_way_stores_nothing_and_can_be_applied_again(
    db: Db, stores: Callable[[], Awaitable[DispatchStore]]
) -> None:
    me = await stores()
    ids = _seed(db, {"a": me.owner, "b": me.owner})
    (a_call, a_attempt), (b_call, b_attempt) = ids["a"], ids["b"]
    at = datetime.now(UTC)
    good = [
        Transition(a_attempt, a_call, CallStatus.RINGING, at),
        Transition(b_attempt, b_call, CallStatus.RINGING, at),
    ]
    # The second layer fails in the database (a cause no int column holds).
    bad = Transition(a_attempt, a_call, CallStatus.FAILED, at, ending=Ending(CallStatus.FAILED, 2**40, "?"))
    with pytest.raises(StoreRefused) as refused:  # the port's error, the database's as its cause
        await me.apply([*good, bad])
    assert isinstance(refused.value.__cause__, psycopg.errors.NumericValueOutOfRange)
    statuses = db.execute(
        "SELECT status FROM calls WHERE id IN (%s, %s) UNION ALL "
        "SELECT status FROM call_attempts WHERE id IN (%s, %s)",
        (a_call, b_call, a_attempt, b_attempt),
    ).fetchall()
    assert [r["status"] for r in statuses] == ["initiated"] * 4
    # The dispatcher keeps a failed batch and applies it again: the pooled connection is sound.
    assert await me.apply(good) == [StoredStatus(CallStatus.RINGING)] * 2


async def test_a_retry_after_a_cancel_or_a_trunk_removal_ends_the_call_canceled(
    db: Db, stores: Callable[[], Awaitable[DispatchStore]]
) -> None:
    """The cancel came while the attempt was live, too late for the dispatcher to hang it up:
    the attempt keeps its own outcome and the call is not dialed again."""
    me = await stores()
    ids = _seed(db, {"requested": me.owner, "campaign": me.owner, "plain": me.owner})
    ids |= _seed(db, {"trunk gone": me.owner}, trunk=GONE)
    campaign = db.execute(
        "INSERT INTO campaigns (id, name, status, tts_template, tts_voice) "
        "VALUES (%s, 'store test', 'canceled', 'Hi.', 'en-us') RETURNING id",
        (uuid.uuid4(),),
    ).fetchone()
    assert campaign is not None
    db.execute("UPDATE calls SET cancel_requested_at = now() WHERE id = %s", (ids["requested"][0],))
    db.execute("UPDATE calls SET campaign_id = %s WHERE id = %s", (campaign["id"], ids["campaign"][0]))
    at = datetime.now(UTC)
    busy = Ending(CallStatus.BUSY, 17, "User busy")

    def busy_then_retry(key: str) -> Transition:
        call, attempt = ids[key]
        return Transition(attempt, call, CallStatus.BUSY, at, ending=busy, retry_at=at + timedelta(minutes=1))

    keys = ("requested", "campaign", "trunk gone", "plain")
    batch = [busy_then_retry(k) for k in keys]
    stored = await me.apply(batch)
    assert stored == [
        StoredStatus(CallStatus.CANCELED, "canceled by request"),
        StoredStatus(CallStatus.CANCELED, "campaign canceled"),
        StoredStatus(CallStatus.CANCELED, "trunk removed"),
        StoredStatus(CallStatus.QUEUED, "retrying after busy"),
    ]
    for key, status in zip(keys, ("canceled", "canceled", "canceled", "queued")):
        call, attempt = ids[key]
        row = db.execute("SELECT status, ended_at FROM calls WHERE id = %s", (call,)).fetchone()
        assert row is not None and row["status"] == status
        assert (row["ended_at"] == at) is (status == "canceled")
        attempt_row = db.execute("SELECT status FROM call_attempts WHERE id = %s", (attempt,)).fetchone()
        assert attempt_row is not None and attempt_row["status"] == "busy"
    # The status event, stored with it, says both: the call ended canceled, its attempt busy.
    assert _status_events(db, ids["requested"][0]) == [
        {
            "status": "canceled",
            "attempt_status": "busy",
            "cause": 17,
            "cause_text": "User busy",
            "reason": "canceled by request",
        }
    ]
    retry_at = batch[-1].retry_at
    assert retry_at is not None
    queued = _status_events(db, ids["plain"][0])
    assert queued == [
        {
            "status": "queued",
            "retry_after": "busy",
            "retry_at": queued[0]["retry_at"],
            "cause": 17,
            "cause_text": "User busy",
        }
    ]
    assert datetime.fromisoformat(queued[0]["retry_at"]) == retry_at


async def test_facts_are_stored_in_order_with_statuses_and_an_opt_out_lands_on_the_dnc_list(
    db: Db, stores: Callable[[], Awaitable[DispatchStore]]
) -> None:
    """An appointment reminder answered, "9" pressed (its reply puts the number on the
    do-not-call list), then completed; a survey's two hook results; a fact of an attempt another
    dispatcher owns is not stored."""
    me, other = await stores(), (await stores()).owner
    ids = _seed(db, {"reminder": me.owner, "survey": me.owner, "theirs": other})
    reminder = Interaction(
        gather=Gather(num_digits=1),
        on_digits={"1": DigitReply(), "9": DigitReply(dnc=True)},
    )
    db.execute(
        "UPDATE calls SET interaction = %s WHERE id = ANY(%s)",
        (Jsonb(reminder.to_json()), [ids["reminder"][0], ids["theirs"][0]]),
    )
    numbers = [
        r["to_number"]
        for r in db.execute("SELECT to_number FROM calls WHERE id = ANY(%s)", ([c for c, _ in ids.values()],))
    ]
    db.execute("DELETE FROM dnc WHERE number = ANY(%s)", (numbers,))
    t0 = datetime.now(UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    def fact(key: str, s: float, **kw: Any) -> CallFact:
        call, attempt = ids[key]
        return CallFact(attempt_id=attempt, call_id=call, at=at(s), **kw)

    call, attempt = ids["reminder"]
    try:
        stored = await me.apply(
            [
                Transition(attempt, call, CallStatus.IN_PROGRESS, at(1), answered=True),
                fact("reminder", 2, answered_by=AnsweredBy.HUMAN),
                fact("reminder", 3, digits="9"),
                Transition(
                    attempt, call, CallStatus.COMPLETED, at(6), ending=Ending(CallStatus.COMPLETED, 16, "")
                ),
                fact("survey", 2, hook=("rating", "4")),
                fact("survey", 3, hook=("comment", "call-back")),
                fact("survey", 4, hook=("rating", "5")),
                fact("theirs", 2, digits="9"),
            ]
        )
        assert [s.status if s else None for s in stored] == [
            CallStatus.IN_PROGRESS,
            None,
            None,
            CallStatus.COMPLETED,
            None,
            None,
            None,
            None,
        ]
        rows = {
            r["id"]: r
            for r in db.execute(
                "SELECT id, status, digits, answered_by, hooks, to_number FROM calls WHERE id = ANY(%s)",
                ([c for c, _ in ids.values()],),
            )
        }
        got = rows[call]
        assert (got["status"], got["digits"], got["answered_by"]) == ("completed", "9", "human")
        assert rows[ids["survey"][0]]["hooks"] == {"rating": "5", "comment": "call-back"}
        assert rows[ids["theirs"][0]]["digits"] is None, "fenced: another dispatcher's attempt"
        listed = db.execute("SELECT number, reason FROM dnc WHERE number = ANY(%s)", (numbers,)).fetchall()
        assert [r["number"] for r in listed] == [got["to_number"]]
        assert str(call) in listed[0]["reason"]
        events = db.execute(
            "SELECT type, data FROM call_events WHERE call_id = %s AND type <> 'status' ORDER BY at, id",
            (call,),
        ).fetchall()
        assert [(e["type"], e["data"]) for e in events] == [
            ("machine_detection", {"answered_by": "human"}),
            ("digits", {"digits": "9", "dnc": True}),
        ]
        statuses = [e["status"] for e in _status_events(db, call)]
        assert statuses == ["in-progress", "completed"]
    finally:
        db.execute("DELETE FROM dnc WHERE number = ANY(%s)", (numbers,))
