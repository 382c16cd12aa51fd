"""Least privilege, asked of the real thing: what Asterisk refuses the dispatcher's AMI user, what
the nodes do not load, where ARI listens, and what PostgreSQL refuses each process's role."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from panoramisk import Manager

from tests.integration.cli import sespcl, stack_env

Db = psycopg.Connection[dict[str, Any]]
NODE = "127.0.10.1"
FORGED_DELIVERY = (
    "INSERT INTO webhook_deliveries (id, call_id, type, payload, url) "
    "VALUES ('msg_' || repeat('0', 32), gen_random_uuid(), 'hook', '{}', 'https://x.example')"
)
ADMIN_ACTIONS = (
    {"Action": "PJSIPShowEndpoint", "Endpoint": "demo"},
    {"Action": "SorceryMemoryCacheExpireObject", "Cache": "sespcl-endpoint", "Object": "demo"},
    {"Action": "UpdateConfig", "SrcFilename": "manager.conf", "DstFilename": "manager.conf"},
    {"Action": "ModuleLoad", "Module": "res_agi.so", "LoadType": "load"},
)


@asynccontextmanager
async def _ami(username: str, secret: str) -> AsyncIterator[Manager]:
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=NODE,
        port=5038,
        username=username,
        secret=secret,
        ping_delay=3600,
    )
    await asyncio.wait_for(manager.connect(), 10)
    try:
        yield manager
    finally:
        manager.close()


def _dispatcher_login(db: Db) -> tuple[str, str]:
    """The credentials the dispatcher dials with: the node's row, as `nodes add` stored it."""
    row = db.execute("SELECT ami_user, ami_secret FROM nodes WHERE name = 'n1'").fetchone()
    assert row is not None
    return str(row["ami_user"]), str(row["ami_secret"])


async def test_the_dispatchers_ami_user_cannot_run_commands_or_programs(db: Db) -> None:
    user, secret = _dispatcher_login(db)
    async with _ami(user, secret) as ami:
        command = await ami.send_action({"Action": "Command", "Command": "core show uptime"})
        assert command["Response"] == "Error" and "Permission denied" in command["Message"]
        for app, data in (
            ("AGI", "agi:async"),
            ("System", "touch /tmp/sespcl-pwned"),
            ("Exec", "System(id)"),
        ):
            reply = await ami.send_action(
                {
                    "Action": "Originate",
                    "Channel": "Local/s@default",
                    "Application": app,
                    "Data": data,
                    "Async": "false",
                    "Timeout": "1000",
                }  # fmt: skip
            )
            assert reply["Response"] == "Error", (app, dict(reply))
            assert "Forbidden" in reply["Message"] or "denied" in reply["Message"], (app, dict(reply))
        for action in ADMIN_ACTIONS:
            reply = await ami.send_action(action)
            assert reply["Response"] == "Error" and "Permission denied" in reply["Message"], dict(reply)
        # what dialing needs still works
        listed = await ami.send_action({"Action": "CoreShowChannels"}, as_list=True)
        assert any(dict(m).get("Event") == "CoreShowChannelsComplete" for m in listed)
        settings = await ami.send_action({"Action": "CoreSettings"})
        assert settings["Response"] == "Success" and settings["AsteriskVersion"]
    assert not os.path.exists("/tmp/sespcl-pwned")


async def test_the_admin_user_cannot_dial_and_dangerous_modules_are_not_loaded() -> None:
    secret = stack_env()["SESPCL_AMI_ADMIN_SECRET"]
    async with _ami("sespcl-admin", secret) as ami:
        originate = await ami.send_action(
            {"Action": "Originate", "Channel": "Local/s@default", "Application": "Playback", "Data": "beep"}
        )
        assert originate["Response"] == "Error" and "Permission denied" in originate["Message"]
        for module in (
            "res_agi",
            "app_exec",
            "func_env",
            "func_curl",
            "app_externalivr",
            "app_chanspy",
            "app_system",
        ):
            reply = await ami.send_action({"Action": "ModuleCheck", "Module": module})
            assert reply["Response"] == "Error", (module, dict(reply))
        loaded = await ami.send_action({"Action": "ModuleCheck", "Module": "app_playback"})
        assert loaded["Response"] == "Success", "the check itself works"


async def test_ari_listens_on_the_node_address_only_with_its_own_credentials(db: Db) -> None:
    password = stack_env()["SESPCL_ARI_PASSWORD"]
    _, ami_secret = _dispatcher_login(db)
    async with httpx.AsyncClient(timeout=5) as client:
        for auth, expected in ((None, 401), (("sespcl", ami_secret), 401), (("sespcl", password), 200)):
            reply = await client.get(f"http://{NODE}:8088/ari/asterisk/info", auth=auth)
            assert reply.status_code == expected, (auth and auth[1][:3], reply.status_code)
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:8088/ari/asterisk/info", auth=("sespcl", password))


@pytest.fixture(scope="module")
def as_role() -> Iterator[Any]:
    env = stack_env()
    opened: list[psycopg.Connection[Any]] = []

    def connect(role: str) -> psycopg.Connection[Any]:
        url = psycopg.conninfo.make_conninfo(
            env["DATABASE_URL"], user=f"sespcl_{role}", password=env[f"SESPCL_DB_{role.upper()}_PASSWORD"]
        )
        conn = psycopg.connect(url, autocommit=True)
        if role == "grafana":
            # Read-only is only that role's default, which any session may lift: what must
            # refuse it is its grants.
            conn.execute("SET default_transaction_read_only = off")
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        ("api", "SELECT ami_secret FROM nodes"),
        ("api", "SELECT password FROM ps_auths"),
        ("api", "DELETE FROM calls WHERE false"),
        ("api", "UPDATE call_attempts SET node = node WHERE false"),
        ("api", "INSERT INTO nodes (name, ami_host, ami_secret) VALUES ('x', 'x', 'x')"),
        ("dispatcher", "INSERT INTO trunks (name, host) VALUES ('x', 'x')"),
        ("dispatcher", "UPDATE nodes SET ami_secret = 'x' WHERE false"),
        ("dispatcher", "SELECT password FROM ps_auths"),
        ("dispatcher", "DELETE FROM calls WHERE false"),
        ("worker", "SELECT * FROM nodes"),
        ("worker", "UPDATE call_attempts SET node = node WHERE false"),
        ("worker", "SELECT data FROM call_events"),
        ("node", "SELECT * FROM calls"),
        ("node", "SELECT ami_secret FROM nodes"),
        ("node", "UPDATE ps_endpoints SET context = 'x' WHERE false"),
        ("node", "SELECT * FROM cdr"),
        ("node", "UPDATE nodes SET state = 'up' WHERE false"),
        ("node", "DELETE FROM nodes WHERE false"),
        # The outbox is written only by the triggers on calls (SECURITY DEFINER): no role may
        # forge a delivery or rewrite what is POSTed.
        ("api", FORGED_DELIVERY),
        ("api", "UPDATE webhook_deliveries SET status = 'delivered' WHERE false"),
        ("dispatcher", "SELECT * FROM webhook_deliveries"),
        ("worker", "UPDATE webhook_deliveries SET url = 'https://x.example' WHERE false"),
        ("webhooks", "SELECT * FROM calls"),
        ("webhooks", "SELECT ami_secret FROM nodes"),
        ("webhooks", "UPDATE webhook_deliveries SET payload = '{}' WHERE false"),
        ("webhooks", "UPDATE webhook_deliveries SET url = 'https://x.example' WHERE false"),
        ("webhooks", FORGED_DELIVERY),
        ("webhooks", "DELETE FROM webhook_tries WHERE false"),
        # Grafana reads its views (schema.sql) and nothing else: no table, no secret, no write.
        ("grafana", "SELECT * FROM calls"),
        ("grafana", "SELECT data FROM call_events"),
        ("grafana", "SELECT ami_secret FROM nodes"),
        ("grafana", "SELECT password FROM ps_auths"),
        ("grafana", "SELECT key_hash FROM api_keys"),
        ("grafana", "INSERT INTO dnc (number) VALUES ('+14155550100')"),
    ],
)
def test_each_role_is_refused_what_it_does_not_run(as_role: Any, role: str, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(role).execute(statement)


@pytest.mark.parametrize("role", ["api", "dispatcher", "worker", "node", "webhooks", "grafana"])
def test_no_role_may_change_the_schema_or_other_roles(as_role: Any, db: Db, role: str) -> None:
    conn = as_role(role)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE sespcl_intruder (x int)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DROP TABLE dnc")
    found = db.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s", (f"sespcl_{role}",)
    ).fetchone()
    assert found == {"rolsuper": False, "rolcreaterole": False, "rolcreatedb": False}


def test_the_node_role_reads_trunks_and_writes_cdrs(as_role: Any) -> None:
    conn = as_role("node")
    assert conn.execute("SELECT count(*) FROM ps_endpoints WHERE id = 'demo'").fetchone() == (1,)
    with conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO cdr (uniqueid, disposition) VALUES ('privilege-test', 'ANSWERED')")


def test_a_node_registers_and_drains_itself_as_the_node_role(db: Db) -> None:
    """What each Asterisk pod's registrar runs on Kubernetes (deploy/k8s/node/registrar.sh), as
    the node's own role: it joins, is drained, and joins again from another address."""
    env = stack_env()
    as_node = {
        "DATABASE_URL": psycopg.conninfo.make_conninfo(
            env["DATABASE_URL"], user="sespcl_node", password=env["SESPCL_DB_NODE_PASSWORD"]
        ),
        "SESPCL_AMI_SECRET": env["SESPCL_AMI_SECRET"],
    }
    name = "registrar-probe"
    try:
        for address in ("127.0.10.98", "127.0.10.99"):  # nothing listens: no dispatcher dials it
            for command in (("add", name, "--ami-host", address, "--replace"), ("drain", name)):
                done = sespcl("nodes", *command, **as_node)
                assert done.returncode == 0, (command, done.stderr)
        row = db.execute("SELECT ami_host, drained FROM nodes WHERE name = %s", (name,)).fetchone()
        assert row == {"ami_host": "127.0.10.99", "drained": True}
    finally:
        db.execute("DELETE FROM nodes WHERE name = %s", (name,))


def test_the_owner_owns_every_table(db: Db) -> None:
    others = db.execute(
        "SELECT tablename, tableowner FROM pg_tables "
        "WHERE schemaname = 'public' AND tableowner <> 'sespcl_owner'"
    ).fetchall()
    assert others == []
    assert db.execute("SELECT current_user AS u").fetchone() == {"u": "sespcl_owner"}


def test_no_service_process_runs_as_root() -> None:
    """The API, dispatcher and workers run as an unprivileged user; each node's Asterisk drops to
    its own once it has bound its ports."""
    import subprocess
    from pathlib import Path

    found: dict[str, list[int]] = {}
    for command in ("serve", "dispatcher", "worker", "webhooks run"):
        listed = subprocess.run(["pgrep", "-f", f"bin/sespcl {command}"], capture_output=True, text=True)
        pids = [int(p) for p in listed.stdout.split()]
        found[command] = [
            p for p in pids if b"python" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0]
        ]
    state = Path(os.environ["SESPCL_STATE_DIR"])
    found["asterisk"] = [int((state / f"asterisk-{node}.pid").read_text()) for node in ("n1", "n2")]
    assert all(found.values()), found

    def uids(pid: int) -> set[int]:  # real, effective, saved and filesystem
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
        return {int(uid) for uid in line.split()[1:]}

    owners = {name: set().union(*(uids(pid) for pid in pids)) for name, pids in found.items()}
    assert all(0 not in ids for ids in owners.values()), owners
    # A node sees the host's /proc: its uid must open none of the host's files (postgres' data).
    import pwd

    for uid in owners["asterisk"]:
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
