"""`sespcl trunks …`: carrier trunks, stored in PostgreSQL and seen by every node at once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError

from orchestrator.cli.output import database, emit, validation_message
from orchestrator.config import get_settings
from orchestrator.domain.errors import NotFound
from orchestrator.domain.trunk import Transport, TrunkSpec
from orchestrator.persistence.trunks import TRUNK_SETTINGS, TrunkStore

if TYPE_CHECKING:
    from orchestrator.asterisk.session import AmiLogin

_OPTION_NAMES = {"name": "NAME", "is_default": "--default"}


F = TypeVar("F", bound=Callable[..., Any])


def _trunk_options(required_host: bool) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        options = [
            click.option("--host", required=required_host, help="Carrier SIP host (IP or DNS name)."),
            click.option("--port", type=int, default=None, help="SIP port [5060]."),
            click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default=None, help="[udp]"),
            click.option(
                "--tls-verify",
                type=click.BOOL,
                default=None,
                help="With --transport tls: verify the carrier's certificate [yes]. 'no' is for a lab.",
            ),
            click.option("--username", default=None, help="Digest user for the carrier."),
            click.option(
                "--password-env",
                metavar="VAR",
                default=None,
                help="Read the digest password from this environment variable.",
            ),
            click.option("--password-stdin", is_flag=True, help="Read the digest password from stdin."),
            click.option("--from-user", default=None),
            click.option("--from-domain", default=None),
            click.option("--caller-id", default=None, help="E.164 caller id for calls that give none."),
            click.option("--codecs", default=None, help="Comma-separated, e.g. ulaw,alaw [ulaw,alaw]."),
            click.option("--max-channels", type=int, default=None, help="Most calls live at once."),
            click.option("--cps", type=float, default=None, help="Most new calls per second."),
            click.option("--default", "make_default", is_flag=True, help="Use it when a call names none."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _password(password_env: str | None, password_stdin: bool) -> str | None:
    if password_env and password_stdin:
        raise click.UsageError("give --password-env or --password-stdin, not both")
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise click.ClickException(f"environment variable {password_env} is not set or empty")
        return value
    if password_stdin:
        if sys.stdin.isatty():  # typed, not piped: never echoed
            value = click.prompt("Password", hide_input=True, default="", show_default=False)
        else:
            value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise click.ClickException("no password on standard input")
        return value
    return None


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The trunk fields the user actually set on the command line."""
    fields = {
        k: v
        for k, v in options.items()
        if v is not None and k not in ("password_env", "password_stdin", "make_default", "replace", "name")
    }
    password = _password(options.get("password_env"), bool(options.get("password_stdin")))
    if password is not None:
        fields["password"] = password
    if options.get("make_default"):
        fields["is_default"] = True
    return fields


def _spec(**fields: Any) -> TrunkSpec:
    try:
        return TrunkSpec(**fields)
    except ValidationError as exc:
        raise click.ClickException(validation_message(exc, _OPTION_NAMES)) from exc


@click.group()
def trunks() -> None:
    """SIP trunks to your carriers (PJSIP realtime: every node sees changes at once)."""


def _warn_unverified(spec: TrunkSpec) -> None:
    if spec.transport is Transport.TLS and not spec.tls_verify:
        click.echo(
            f"warning: trunk {spec.name} does not verify the carrier's TLS certificate: anyone on "
            "the path can pose as the carrier. Use it in a lab only.",
            err=True,
        )


def _admin_logins() -> list[AmiLogin] | None:
    """Every node's AMI as the administrative user; None without its secret."""
    from orchestrator.asterisk.session import AmiLogin
    from orchestrator.persistence.nodes import node_rows

    settings = get_settings()
    secret = settings.ami_admin_secret.get_secret_value()
    if not secret:
        return None
    with database() as conn:
        nodes = node_rows(conn)
    return [AmiLogin.admin(node, settings.ami_admin_user, secret) for node in nodes]


def _expire_on_nodes(name: str) -> None:
    """The change is committed; make every node drop its cached copy of the trunk now. A node
    not reached is only warned about: it refreshes by itself within the cache's lifetime."""
    from orchestrator.asterisk.sorcery_cache import CACHE_LIFETIME_S, expire_trunk_everywhere

    logins = _admin_logins()
    if logins is None:
        click.echo(
            f"warning: SESPCL_AMI_ADMIN_SECRET is not set, so no node was told of the change to trunk "
            f"{name}; they use it within {CACHE_LIFETIME_S} s",
            err=True,
        )
        return
    for result in asyncio.run(expire_trunk_everywhere(logins, name)):
        if not result.expired:
            click.echo(
                f"warning: node {result.node} not told of the change to trunk {name} ({result.detail}); "
                f"it uses the change within {CACHE_LIFETIME_S} s",
                err=True,
            )


@trunks.command("add")
@click.argument("name")
@_trunk_options(required_host=True)
@click.option("--replace", is_flag=True, help="Overwrite a trunk of that name instead of failing.")
def trunks_add(name: str, replace: bool, **options: Any) -> None:
    """Add a trunk."""
    spec = _spec(name=name, **_given(options))
    with database() as conn:
        store = TrunkStore(conn)
        if replace:
            try:
                existing = store.spec(name)
            except NotFound:
                existing = None
            if existing is not None and not spec.is_default and existing.is_default:
                spec = spec.model_copy(update={"is_default": True})
            store.save(spec, create=existing is None)
        else:
            store.save(spec, create=True)
    _expire_on_nodes(name)
    _warn_unverified(spec)
    click.echo(f"trunk {name} added")


@trunks.command("update")
@click.argument("name")
@_trunk_options(required_host=False)
def trunks_update(name: str, **options: Any) -> None:
    """Change some settings of a trunk; the others stay."""
    changes = _given(options)
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    with database() as conn:
        store = TrunkStore(conn)
        current = store.spec(name).model_dump()
        current.update(changes)
        spec = _spec(**current)
        store.save(spec, create=False)
    _expire_on_nodes(name)
    _warn_unverified(spec)
    click.echo(f"trunk {name} updated")


_COLUMNS = (
    "name",
    "host",
    "port",
    "transport",
    "codecs",
    "max_channels",
    "cps",
    "caller_id",
    "default",
    "live_calls",
)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    settings = (c for c in TRUNK_SETTINGS if c != "is_default")
    keys = ("name", *settings, "live_calls", "created_at", "updated_at")
    public = {k: row.get(k) for k in keys}
    public["default"] = row["is_default"]
    if "has_password" in row:
        public["password"] = "set" if row["has_password"] else None
    return public


@trunks.command("list")
@click.option("--json", "as_json", is_flag=True)
def trunks_list(as_json: bool) -> None:
    """List trunks."""
    with database() as conn:
        rows = [_public(r) for r in TrunkStore(conn).list()]
    emit(rows, _COLUMNS, as_json)


@trunks.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def trunks_show(name: str, as_json: bool) -> None:
    """Show one trunk (the password only as set / not set)."""
    with database() as conn:
        row = _public(TrunkStore(conn).get(name))
    if as_json:
        click.echo(json.dumps(row, default=str, indent=2))
        return
    for key, value in row.items():
        click.echo(f"{key:13} {'' if value is None else value}")


@trunks.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even with calls on it (queued ones are canceled).")
def trunks_remove(name: str, force: bool) -> None:
    """Remove a trunk; refuses while calls are live on it, unless --force."""
    with database() as conn:
        canceled = TrunkStore(conn).remove(name, force=force)
    _expire_on_nodes(name)
    click.echo(f"trunk {name} removed" + (f"; {canceled} queued calls canceled" if canceled else ""))


@trunks.command("test")
@click.argument("name")
@click.option("--timeout", type=click.FloatRange(0.5, 30), default=5.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def trunks_test(name: str, timeout: float, as_json: bool) -> None:
    """Send SIP OPTIONS to the trunk from every node; exit 1 when any node cannot reach it."""
    from orchestrator.asterisk.qualify import qualify_everywhere

    with database() as conn:
        TrunkStore(conn).get(name)
    logins = _admin_logins()
    if logins is None:
        raise click.ClickException(
            "SESPCL_AMI_ADMIN_SECRET is not set: the test logs in to each node's AMI as its "
            "administrative user (SESPCL_AMI_ADMIN_USER)"
        )
    if not logins:
        raise click.ClickException("no Asterisk node is registered (sespcl nodes add)")
    results = asyncio.run(qualify_everywhere(logins, name, timeout))
    rows = [r.as_dict() for r in results]
    emit(rows, ("node", "reachable", "rtt_ms", "status", "detail"), as_json)
    if not all(r.reachable for r in results):
        sys.exit(1)
