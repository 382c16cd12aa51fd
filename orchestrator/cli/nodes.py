"""`sespcl nodes …`: the Asterisk farm."""

from __future__ import annotations

import os
import re

import click

from orchestrator.cli.output import database, emit
from orchestrator.config import get_settings
from orchestrator.domain.trunk import MAX_CHANNELS_LIMIT, check_host

NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
AMI_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_NODE_COLUMNS = ("ami_host", "ami_port", "ami_user", "ami_secret", "ari_url", "max_channels", "driver",
                 "ari_user", "ari_secret")  # fmt: skip
REPLACE_NODE = (
    "UPDATE nodes SET " + ", ".join(f"{c} = %({c})s" for c in _NODE_COLUMNS) + " WHERE name = %(name)s"
)
INSERT_NODE = (
    f"INSERT INTO nodes (name, {', '.join(_NODE_COLUMNS)}) "
    f"VALUES (%(name)s, {', '.join(f'%({c})s' for c in _NODE_COLUMNS)}) ON CONFLICT (name) DO NOTHING"
)


@click.group()
def nodes() -> None:
    """Asterisk nodes of the farm."""


@nodes.command("add")
@click.argument("name")
@click.option("--ami-host", required=True)
@click.option("--ami-port", type=int, default=5038, show_default=True)
@click.option("--ami-user", default="sespcl", show_default=True)
@click.option(
    "--ami-secret-env",
    metavar="VAR",
    default="SESPCL_AMI_SECRET",
    show_default=True,
    help="Environment variable holding the AMI secret.",
)
@click.option("--ari-url", default=None, help="e.g. http://127.0.10.1:8088/ari")
@click.option(
    "--driver",
    type=click.Choice(["ami", "ari"]),
    default="ami",
    show_default=True,
    help="Dial and follow calls over AMI or ARI (ARI needs --ari-url).",
)
@click.option("--ari-user", default="sespcl", show_default=True)
@click.option(
    "--ari-secret-env",
    metavar="VAR",
    default="SESPCL_ARI_PASSWORD",
    show_default=True,
    help="Environment variable holding the ARI password (read when set, required for --driver ari).",
)
@click.option("--max-channels", type=int, default=None, help="Most calls live on the node at once.")
@click.option("--replace", is_flag=True, help="Overwrite a node of that name instead of failing.")
def nodes_add(
    name: str,
    ami_host: str,
    ami_port: int,
    ami_user: str,
    ami_secret_env: str,
    ari_url: str | None,
    driver: str,
    ari_user: str,
    ari_secret_env: str,
    max_channels: int | None,
    replace: bool,
) -> None:
    """Register an Asterisk node."""
    _check_address(name, ami_host, ami_port, ami_user, ari_url, ari_user)
    ari_secret = _secret_from(ari_secret_env)
    if driver == "ari" and (ari_url is None or ari_secret is None):
        raise click.ClickException(f"--driver ari needs --ari-url and the ARI password in ${ari_secret_env}")
    channels = get_settings().node_max_channels_default if max_channels is None else max_channels
    if not 1 <= channels <= MAX_CHANNELS_LIMIT:
        raise click.ClickException(f"invalid --max-channels: must be 1 to {MAX_CHANNELS_LIMIT}")
    secret = _secret_from(ami_secret_env)
    if secret is None:
        raise click.ClickException(f"environment variable {ami_secret_env} is not set or empty")
    row = {
        "name": name,
        "ami_host": ami_host,
        "ami_port": ami_port,
        "ami_user": ami_user,
        "ami_secret": secret,
        "ari_url": ari_url,
        "max_channels": channels,
        "driver": driver,
        "ari_user": ari_user,
        "ari_secret": ari_secret,
    }
    with database() as conn, conn.transaction():
        # An UPDATE, then an INSERT, not one upsert: an upsert's EXCLUDED.* reads the columns back,
        # and the role an Asterisk pod registers itself with (deploy/k8s) may write a node's row
        # but not read its secrets.
        stored = replace and conn.execute(REPLACE_NODE, row).rowcount > 0
        stored = stored or conn.execute(INSERT_NODE, row).rowcount > 0
    if not stored:
        raise click.ClickException(f"a node named {name!r} already exists")
    click.echo(f"node {name} added ({driver})")


def _check_address(
    name: str, ami_host: str, ami_port: int, ami_user: str, ari_url: str | None, ari_user: str
) -> None:
    """The node's name and how to reach it, refused with the option's name."""
    if not NODE_NAME.fullmatch(name):
        raise click.ClickException(
            f"invalid NAME {name!r}: lowercase letters, digits and '-', "
            "starting with a letter, at most 31 characters"
        )
    try:
        check_host(ami_host)
    except ValueError as exc:
        raise click.ClickException(f"invalid --ami-host: {exc}") from exc
    if not 1 <= ami_port <= 65535:
        raise click.ClickException(f"invalid --ami-port: {ami_port} is not a port (1-65535)")
    if not AMI_USER.fullmatch(ami_user):
        raise click.ClickException(f"invalid --ami-user {ami_user!r}")
    if ari_url is not None and not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._/-]*)?", ari_url):
        raise click.ClickException(f"invalid --ari-url {ari_url!r}")
    if not AMI_USER.fullmatch(ari_user):
        raise click.ClickException(f"invalid --ari-user {ari_user!r}")


def _secret_from(variable: str) -> str | None:
    """The secret in an environment variable (None: unset or empty); no control character."""
    secret = os.environ.get(variable) or None
    if secret is not None and any(ord(c) < 32 for c in secret):
        raise click.ClickException(f"{variable} contains a control character")
    return secret


@nodes.command("list")
@click.option("--json", "as_json", is_flag=True)
def nodes_list(as_json: bool) -> None:
    """Nodes with their state, live channels and Asterisk version."""
    with database() as conn:
        rows = conn.execute(
            """
            SELECT n.name, n.driver, n.ami_host, n.ami_port, n.state, n.drained, n.max_channels,
                   (SELECT count(*) FROM call_attempts a WHERE a.node = n.name AND a.ended_at IS NULL)
                       AS live_channels,
                   round(n.pace_cps)::int AS pace_cps, n.version, n.last_seen_at
            FROM nodes n ORDER BY n.name
            """
        ).fetchall()
    emit(
        rows,
        (
            "name",
            "driver",
            "ami_host",
            "ami_port",
            "state",
            "drained",
            "live_channels",
            "max_channels",
            "pace_cps",
            "version",
        ),  # fmt: skip
        as_json,
    )


def _set_drained(name: str, drained: bool) -> None:
    with database() as conn, conn.transaction():
        changed = conn.execute("UPDATE nodes SET drained = %s WHERE name = %s", (drained, name)).rowcount
    if not changed:
        raise click.ClickException(f"no node named {name!r}")


@nodes.command("drain")
@click.argument("name")
def nodes_drain(name: str) -> None:
    """Give the node no new calls; its live calls finish."""
    _set_drained(name, True)
    click.echo(f"node {name} drained: no new calls")


@nodes.command("undrain")
@click.argument("name")
def nodes_undrain(name: str) -> None:
    """Let the node take new calls again."""
    _set_drained(name, False)
    click.echo(f"node {name} takes calls again")


@nodes.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even while calls are live on it.")
def nodes_remove(name: str, force: bool) -> None:
    """Forget a node; refuses while calls are live on it (drain it first), unless --force."""
    with database() as conn, conn.transaction():
        row = conn.execute("SELECT name FROM nodes WHERE name = %s FOR UPDATE", (name,)).fetchone()
        if row is None:
            raise click.ClickException(f"no node named {name!r}")
        live = conn.execute(
            "SELECT count(*) AS n FROM call_attempts WHERE node = %s AND ended_at IS NULL", (name,)
        ).fetchone()
        if live and live["n"] and not force:
            raise click.ClickException(
                f"node {name!r} has {live['n']} live calls; drain it and wait, or use --force"
            )
        # Attempts keep the node's name; only the node row goes.
        conn.execute("DELETE FROM nodes WHERE name = %s", (name,))
    click.echo(f"node {name} removed")
