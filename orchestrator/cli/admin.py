"""`sespcl trunks …` and `sespcl nodes …`: the carrier side and the farm, kept in PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from orchestrator.config import get_settings
from orchestrator.domain.errors import Unavailable
from orchestrator.persistence.db import connect

TRUNK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*$")


def _check_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        if HOSTNAME.fullmatch(host):
            return host
    raise click.ClickException(f"invalid host {host!r}: give an IP address or a DNS name")


def _check_name(name: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(name):
        raise click.ClickException(
            f"invalid {what} name {name!r}: lowercase letters, digits and '-' only, starting with a letter"
        )
    return name


@contextmanager
def _db() -> Iterator[psycopg.Connection[dict[str, Any]]]:
    try:
        conn = connect(get_settings().database_url)
    except Unavailable as exc:
        raise click.ClickException(str(exc)) from exc
    with conn:
        yield conn


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Aligned columns for people; --json is there for machines."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _emit(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        print_table(rows, columns)


# ---- trunks ----------------------------------------------------------------------------------

@click.group()
def trunks() -> None:
    """SIP trunks to your carriers."""


@trunks.command("add")
@click.argument("name")
@click.option("--host", required=True, help="The carrier's SIP host (IP or DNS name).")
@click.option("--port", type=click.IntRange(1, 65535), default=5060, show_default=True)
@click.option("--default", "make_default", is_flag=True, help="Use this trunk when a call names none.")
@click.option("--replace", is_flag=True, help="Overwrite a trunk of that name instead of failing.")
def trunks_add(name: str, host: str, port: int, make_default: bool, replace: bool) -> None:
    """Add a trunk."""
    _check_name(name, TRUNK_NAME, "trunk")
    _check_host(host)
    with _db() as conn, conn.transaction():
        if make_default:
            conn.execute("UPDATE trunks SET is_default = false WHERE is_default AND name <> %s", (name,))
        conflict = (
            "ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, "
            "is_default = EXCLUDED.is_default OR trunks.is_default, updated_at = now()"
            if replace else ""
        )
        try:
            conn.execute(
                f"INSERT INTO trunks (name, host, port, is_default) VALUES (%s, %s, %s, %s) {conflict}",
                (name, host, port, make_default),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise click.ClickException(f"a trunk named {name!r} already exists") from exc
    click.echo(f"trunk {name} added")


@trunks.command("list")
@click.option("--json", "as_json", is_flag=True)
def trunks_list(as_json: bool) -> None:
    """List trunks."""
    with _db() as conn:
        rows = conn.execute(
            "SELECT name, host, port, is_default AS default FROM trunks ORDER BY name"
        ).fetchall()
    _emit(rows, ("name", "host", "port", "default"), as_json)


# ---- nodes -----------------------------------------------------------------------------------

@click.group()
def nodes() -> None:
    """Asterisk nodes of the farm."""


@nodes.command("add")
@click.argument("name")
@click.option("--ami-host", required=True)
@click.option("--ami-port", type=click.IntRange(1, 65535), default=5038, show_default=True)
@click.option("--ami-user", default="sespcl", show_default=True)
@click.option("--ami-secret-env", default="SESPCL_AMI_SECRET", show_default=True,
              help="Name of the environment variable holding the AMI secret.")
@click.option("--ari-url", default=None)
@click.option("--max-channels", type=click.IntRange(1, 100000), default=None)
@click.option("--replace", is_flag=True, help="Overwrite a node of that name instead of failing.")
def nodes_add(name: str, ami_host: str, ami_port: int, ami_user: str, ami_secret_env: str,
              ari_url: str | None, max_channels: int | None, replace: bool) -> None:
    """Register an Asterisk node."""
    _check_name(name, NODE_NAME, "node")
    _check_host(ami_host)
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", ami_user):
        raise click.ClickException(f"invalid AMI user {ami_user!r}")
    secret = os.environ.get(ami_secret_env)
    if not secret:
        raise click.ClickException(f"environment variable {ami_secret_env} is not set or empty")
    if any(c in secret for c in "\r\n\x00"):
        raise click.ClickException(f"{ami_secret_env} contains a line break or NUL")
    channels = max_channels or get_settings().node_max_channels_default
    conflict = (
        "ON CONFLICT (name) DO UPDATE SET ami_host = EXCLUDED.ami_host, ami_port = EXCLUDED.ami_port, "
        "ami_user = EXCLUDED.ami_user, ami_secret = EXCLUDED.ami_secret, ari_url = EXCLUDED.ari_url, "
        "max_channels = EXCLUDED.max_channels"
        if replace else ""
    )
    with _db() as conn, conn.transaction():
        try:
            conn.execute(
                "INSERT INTO nodes (name, ami_host, ami_port, ami_user, ami_secret, ari_url, max_channels) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s) {conflict}",
                (name, ami_host, ami_port, ami_user, secret, ari_url, channels),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise click.ClickException(f"a node named {name!r} already exists") from exc
    click.echo(f"node {name} added")


@nodes.command("list")
@click.option("--json", "as_json", is_flag=True)
def nodes_list(as_json: bool) -> None:
    """List nodes with their state and live channels."""
    with _db() as conn:
        rows = conn.execute(
            """
            SELECT n.name, n.ami_host, n.ami_port, n.state, n.drained, n.max_channels,
                   (SELECT count(*) FROM call_attempts a WHERE a.node = n.name AND a.ended_at IS NULL)
                       AS live_channels,
                   n.version, n.last_seen_at
            FROM nodes n ORDER BY n.name
            """
        ).fetchall()
    _emit(rows, ("name", "ami_host", "ami_port", "state", "drained", "live_channels", "max_channels",
                 "version"), as_json)
