"""Trunks managed from the CLI (PJSIP realtime, no reload) and the farm's limits, against real
SIPp carriers started here: what the carrier saw is the proof, not only what the database says."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.cli import add_trunk as _add
from tests.integration.cli import sespcl
from tests.integration.conftest import call_body, wait_final
from tests.integration.sipp import Carrier

LONG_TEXT = "Checking how many channels a trunk carries at once."
TEST_TRUNKS = ("t-life", "t-max", "t-cps", "t-live", "t-dead", "t-bad")


def _remove_test_trunks() -> None:
    for name in TEST_TRUNKS:
        sespcl("trunks", "remove", name, "--force")


@pytest.fixture(scope="module")
def carriers() -> Iterator[dict[str, Carrier]]:
    started = {
        "a": Carrier("t-a", "127.0.30.1", "answer").start(),
        "b": Carrier("t-b", "127.0.30.2", "answer").start(),
        "max": Carrier("t-max", "127.0.30.3", "answer").start(),
        "cps": Carrier("t-cps", "127.0.30.4", "answer").start(),
    }
    _remove_test_trunks()
    try:
        yield started
    finally:
        _remove_test_trunks()
        for carrier in started.values():
            carrier.stop()


async def _place(api: httpx.AsyncClient, trunk: str, count: int, text: str) -> list[dict[str, Any]]:
    async def one(i: int) -> dict[str, Any]:
        response = await api.post(
            "/v1/calls", json=call_body(to=f"+1415555{1000 + i:04d}", text=text, trunk=trunk)
        )
        assert response.status_code == 202, response.text
        return await wait_final(api, response.json()["id"], timeout=120)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.fixture(scope="module")
async def limited(api: httpx.AsyncClient, carriers: dict[str, Carrier]) -> dict[str, list[dict[str, Any]]]:
    """6 calls on a 2-channel trunk and 8 on a 2-cps trunk, all at once."""
    _add("t-max", carriers["max"].address, "--max-channels", "2")
    _add("t-cps", carriers["cps"].address, "--cps", "2")
    limited_calls, paced_calls = await asyncio.gather(
        _place(api, "t-max", 6, LONG_TEXT),
        _place(api, "t-cps", 8, "Pacing test."),
    )
    return {"max": limited_calls, "cps": paced_calls}


async def test_max_channels_holds_at_the_carrier(
    limited: dict[str, list[dict[str, Any]]], carriers: dict[str, Carrier]
) -> None:
    assert [c["status"] for c in limited["max"]] == ["completed"] * 6
    carrier = carriers["max"]
    assert len(carrier.invites()) == 6
    # 2, never more: and exactly 2 at some point, or the test could not tell a limit from luck.
    assert carrier.max_concurrent_dialogs() == 2


async def test_cps_holds_at_the_carrier(
    limited: dict[str, list[dict[str, Any]]], carriers: dict[str, Carrier]
) -> None:
    assert [c["status"] for c in limited["cps"]] == ["completed"] * 8
    carrier = carriers["cps"]
    assert len(carrier.invites()) == 8
    assert carrier.max_invites_in_any_second() == 2
    span = (carrier.invites()[-1].at - carrier.invites()[0].at).total_seconds()
    assert span >= 3.0, "8 calls at 2 per second take at least 3 s"


async def test_both_nodes_carry_calls(limited: dict[str, list[dict[str, Any]]]) -> None:
    nodes = {c["attempts"][0]["node"] for calls in limited.values() for c in calls}
    assert nodes == {"n1", "n2"}


async def test_trunk_lifecycle_without_reload(api: httpx.AsyncClient, carriers: dict[str, Carrier]) -> None:
    _add("t-life", carriers["a"].address, "--codecs", "ulaw", "--caller-id", "+14155550111")
    first = await _place(api, "t-life", 1, "Lifecycle, first carrier.")
    assert first[0]["status"] == "completed"
    assert len(carriers["a"].invites()) == 1 and not carriers["b"].invites()
    # The trunk's caller id stands in for the call's missing `from`.
    assert (
        "From: <sip:+14155550111@" in carriers["a"].log.read_text()
        or '"+14155550111" <sip:+14155550111@' in carriers["a"].log.read_text()
    )
    updated = sespcl("trunks", "update", "t-life", "--host", carriers["b"].address)
    assert updated.returncode == 0, updated.stderr
    second = await _place(api, "t-life", 1, "Lifecycle, second carrier.")
    assert second[0]["status"] == "completed"
    assert len(carriers["b"].invites()) == 1 and len(carriers["a"].invites()) == 1
    # Nodes cache endpoints: a change to one (From user) is expired on every node, and every
    # call placed after the command returns uses it, on whichever node it lands.
    from_user = sespcl("trunks", "update", "t-life", "--from-user", "life-user")
    assert from_user.returncode == 0, from_user.stderr
    third = await _place(api, "t-life", 6, "Lifecycle, new From user.")
    assert [c["status"] for c in third] == ["completed"] * 6
    invites = carriers["b"].invites()
    assert len(invites) == 7
    assert invites[0].from_uri.startswith("sip:+14155550111@"), invites[0]
    assert all(i.from_uri.startswith("sip:life-user@") for i in invites[1:]), invites
    shown = json.loads(sespcl("trunks", "show", "t-life", "--json").stdout)
    assert shown["host"] == carriers["b"].address and shown["codecs"] == "ulaw"
    assert shown["caller_id"] == "+14155550111"
    removed = sespcl("trunks", "remove", "t-life")
    assert removed.returncode == 0, removed.stderr
    gone = await api.post("/v1/calls", json=call_body(trunk="t-life"))
    assert gone.status_code == 422 and gone.json()["error"]["code"] == "unknown-trunk"


def test_trunk_change_warns_of_a_node_it_could_not_tell(carriers: dict[str, Carrier]) -> None:
    """Nodes cache trunks; a change is expired on every node at once. One that cannot be reached
    is named in a warning (the change still stands; that node refreshes within the cache's
    lifetime)."""
    added = sespcl(
        "nodes", "add", "n-gone", "--ami-host", "127.0.10.250", "--ami-secret-env", "SESPCL_TEST_DEAD_SECRET",
        SESPCL_TEST_DEAD_SECRET="unused",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    try:
        changed = sespcl("trunks", "add", "t-life", "--host", carriers["a"].address, "--replace")
        assert changed.returncode == 0, changed.stderr
        assert "node n-gone not told of the change to trunk t-life" in changed.stderr
        assert "node n1" not in changed.stderr and "node n2" not in changed.stderr
    finally:
        sespcl("nodes", "remove", "n-gone")
        sespcl("trunks", "remove", "t-life", "--force")


def test_trunks_test_live_and_dead(carriers: dict[str, Carrier]) -> None:
    _add("t-live", carriers["a"].address)
    _add("t-dead", "127.0.30.99")
    live = sespcl("trunks", "test", "t-live", "--json")
    assert live.returncode == 0, live.stdout + live.stderr
    rows = json.loads(live.stdout)
    assert {r["node"] for r in rows} == {"n1", "n2"}
    assert all(r["reachable"] and r["rtt_ms"] is not None and r["rtt_ms"] >= 0 for r in rows)
    dead = sespcl("trunks", "test", "t-dead", "--json", "--timeout", "4")
    assert dead.returncode == 1
    assert not any(r["reachable"] for r in json.loads(dead.stdout))


def test_password_is_never_shown(carriers: dict[str, Carrier]) -> None:
    secret = f"s3cret-{uuid.uuid4().hex[:8]}"
    added = sespcl(
        "trunks",
        "add",
        "t-bad",
        "--host",
        carriers["a"].address,
        "--username",
        "acme",
        "--password-env",
        "TRUNK_PW",
        TRUNK_PW=secret,
    )
    assert added.returncode == 0, added.stderr
    for args in (("trunks", "show", "t-bad"), ("trunks", "show", "t-bad", "--json"), ("trunks", "list")):
        result = sespcl(*args)
        assert secret not in result.stdout + result.stderr
    assert json.loads(sespcl("trunks", "show", "t-bad", "--json").stdout)["password"] == "set"
    via_stdin = sespcl("trunks", "update", "t-bad", "--password-stdin", stdin=f"{secret}2\n")
    assert via_stdin.returncode == 0 and secret not in via_stdin.stdout
    assert sespcl("trunks", "remove", "t-bad").returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("trunks", "add", "demo", "--host", "127.0.20.1"), {}, "already exists"),
        (("trunks", "add", "t-bad", "--host", "not a host"), {}, "--host"),
        (("trunks", "add", "t-bad", "--host", "127.0.30.1", "--port", "70000"), {}, "--port"),
        (("trunks", "add", "t-bad", "--host", "127.0.30.1", "--codecs", "ulaw,mp3"), {}, "unknown codec"),
        (
            (
                "trunks",
                "add",
                "t-bad",
                "--host",
                "127.0.30.1",
                "--username",
                "u",
                "--password-env",
                "NOPE_UNSET",
            ),
            {},
            "NOPE_UNSET",
        ),
        (("trunks", "add", "t-bad", "--host", "127.0.30.1", "--caller-id", "555-1234"), {}, "--caller-id"),
        (("trunks", "add", "bad;name", "--host", "127.0.30.1"), {}, "NAME"),
        (("trunks", "add", "t-bad", "--host", "127.0.30.1\nAction: Originate"), {}, "--host"),
        (("trunks", "add", "t-bad", "--host", "127.0.30.1", "--transport", "sctp"), {}, "sctp"),
        (("trunks", "add", "t-bad", "--host", "127.0.30.1", "--username", "u"), {}, "password"),
        (("trunks", "update", "nosuch", "--port", "5070"), {}, "no trunk"),
        (("trunks", "remove", "nosuch"), {}, "no trunk"),
        (
            ("nodes", "add", "n9", "--ami-host", "127.0.10.9", "--ami-secret-env", "NOPE_UNSET"),
            {},
            "NOPE_UNSET",
        ),
        (
            ("nodes", "add", "n1", "--ami-host", "127.0.10.1"),
            {"SESPCL_AMI_SECRET": "x" * 16},
            "already exists",
        ),
        (("nodes", "drain", "nosuch"), {}, "no node"),
        (("trunks", "add", "t-bad", "--host", "999.999.999.999"), {}, "--host"),
        (
            ("nodes", "add", "n9", "--ami-host", "127.0.10.9", "--max-channels", "99999999999"),
            {"SESPCL_AMI_SECRET": "x" * 16},
            "--max-channels",
        ),
        (("calls", "show", "../../health"), {}, "not a valid UUID"),
        (("trunks", "list"), {"SESPCL_MAX_UPLOADS": "999"}, "SESPCL_MAX_UPLOADS"),
        (("trunks", "list"), {"DATABASE_URL": "notaurl"}, "cannot connect to PostgreSQL"),
        (
            ("calls", "show", "0195b6b2-0000-7000-8000-000000000000"),
            {"SESPCL_API_URL": "http://127.0.0.1:1"},
            "not reachable",
        ),
    ],
)
def test_bad_cli_input_changes_nothing(
    args: tuple[str, ...], env: dict[str, str], says: str, db: psycopg.Connection[dict[str, Any]]
) -> None:
    def snapshot() -> list[Any]:
        return [
            db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("trunks", "ps_endpoints", "ps_aors", "ps_auths", "ps_endpoint_id_ips", "nodes")
        ]

    before = snapshot()
    result = sespcl(*args, **env)
    # exit 1 for a refused value, 2 for a usage error (click's own, with its usage lines above)
    assert result.returncode == (2 if result.stderr.startswith("Usage:") else 1), result
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    after = snapshot()
    # nodes.last_seen_at moves by itself; compare the rest
    for table_before, table_after in zip(before, after, strict=True):
        strip = [
            {k: v for k, v in row.items() if k not in ("last_seen_at", "state", "version")}
            for row in table_before
        ]
        assert strip == [
            {k: v for k, v in row.items() if k not in ("last_seen_at", "state", "version")}
            for row in table_after
        ]


async def test_drained_node_gets_no_calls(api: httpx.AsyncClient) -> None:
    assert sespcl("nodes", "drain", "n2").returncode == 0
    try:
        await asyncio.sleep(2.5)  # the dispatcher re-reads nodes every 2 s
        calls = await _place(api, "demo", 6, "Drain test.")
        assert [c["status"] for c in calls] == ["completed"] * 6
        assert {c["attempts"][0]["node"] for c in calls} == {"n1"}
        listed = json.loads(sespcl("nodes", "list", "--json").stdout)
        assert {n["name"]: n["drained"] for n in listed}["n2"] is True
    finally:
        assert sespcl("nodes", "undrain", "n2").returncode == 0


def test_nodes_report_asterisks_version_whatever_the_driver() -> None:
    """AMI's login banner gives only the AMI protocol's version (11.0.0): both drivers must show
    the version of Asterisk itself, as operators compare nodes by it."""
    listed = json.loads(sespcl("nodes", "list", "--json").stdout)
    drivers = {n["driver"] for n in listed}
    versions = {n["version"] for n in listed}
    assert len(versions) == 1 and str(next(iter(versions))).startswith("22."), (drivers, versions)


def _node_state(name: str) -> str:
    listed = json.loads(sespcl("nodes", "list", "--json").stdout)
    return str({n["name"]: n["state"] for n in listed}[name])


async def _wait_state(name: str, state: str, within_s: float) -> float:
    started = asyncio.get_running_loop().time()
    while _node_state(name) != state:
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed < within_s, f"node {name} not {state} after {within_s} s"
        await asyncio.sleep(0.25)
    return asyncio.get_running_loop().time() - started


async def test_hung_node_is_marked_down_and_comes_back(api: httpx.AsyncClient) -> None:
    """SIGSTOP keeps the node's AMI socket open but silent: only pings can tell."""
    pid = int((Path(os.environ["SESPCL_STATE_DIR"]) / "asterisk-n2.pid").read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        await _wait_state("n2", "down", within_s=10)
        calls = await _place(api, "demo", 4, "Node down test.")
        assert [c["status"] for c in calls] == ["completed"] * 4
        assert {c["attempts"][0]["node"] for c in calls} == {"n1"}
    finally:
        os.kill(pid, signal.SIGCONT)
    await _wait_state("n2", "up", within_s=15)


def test_prune_cdr_keeps_the_recent_ones(db: psycopg.Connection[dict[str, Any]]) -> None:
    tag = uuid.uuid4().hex[:8]
    for age_days, name in ((8, "old"), (6, "recent")):
        db.execute(
            "INSERT INTO cdr (calldate, uniqueid, disposition) "
            "VALUES (now() - make_interval(days => %s), %s, 'ANSWERED')",
            (age_days, f"test-{name}-{tag}"),
        )
    try:
        pruned = sespcl("db", "prune-cdr", "--older-than-days", "7")
        assert pruned.returncode == 0, pruned.stderr
        assert int(pruned.stdout.split()[0]) >= 1 and "older than 7 days deleted" in pruned.stdout
        left = {
            r["uniqueid"]
            for r in db.execute("SELECT uniqueid FROM cdr WHERE uniqueid LIKE %s", (f"test-%-{tag}",))
        }
        assert left == {f"test-recent-{tag}"}
        too_soon = sespcl("db", "prune-cdr", "--older-than-days", "0")
        assert too_soon.returncode == 2 and "older-than-days" in too_soon.stderr
    finally:
        db.execute("DELETE FROM cdr WHERE uniqueid LIKE %s", (f"test-%-{tag}",))


def test_prune_cdr_deletes_batch_after_batch() -> None:
    from datetime import timedelta

    from orchestrator.persistence.cdr import prune
    from orchestrator.persistence.db import connect

    tag = uuid.uuid4().hex[:8]
    with connect(os.environ["DATABASE_URL"]) as conn:
        for i in range(3):
            conn.execute(
                "INSERT INTO cdr (calldate, uniqueid) VALUES (now() - interval '30 days', %s)",
                (f"batch-{i}-{tag}",),
            )
        conn.commit()
        # Everything older than 29 days, one row per transaction: the loop must go on past a full batch.
        assert prune(conn, timedelta(days=29), batch=1) >= 3
        left = conn.execute(
            "SELECT count(*) AS n FROM cdr WHERE uniqueid LIKE %s", (f"batch-%-{tag}",)
        ).fetchone()
        assert left is not None and left["n"] == 0
