"""`sespcl keys …`: API keys with scopes, a request rate and the destinations they may call."""

from __future__ import annotations

import json
from typing import Any

import click

from orchestrator.cli.output import database, emit
from orchestrator.config import get_settings
from orchestrator.domain.destinations import parse_countries
from orchestrator.domain.keys import Scope, check_key_name, new_key, parse_scopes
from orchestrator.persistence.keys import add_key, list_keys, revoke_key

MAX_RATE_PER_S = 100_000.0


@click.group()
def keys() -> None:
    """API keys (SESPCL_API_KEY stays the bootstrap key, with every scope)."""


@keys.command("add")
@click.argument("name")
@click.option(
    "--scopes",
    required=True,
    metavar="S[,S…]",
    help="Comma-separated: " + ", ".join(s.value for s in Scope) + " (admin: every scope).",
)
@click.option(
    "--rate-per-s",
    type=float,
    default=None,
    help="Requests a second, across every API process [SESPCL_KEY_RATE_PER_S, 50].",
)
@click.option(
    "--allow-countries",
    metavar="CC[,CC…]",
    default=None,
    help="Only numbers in these countries (ISO 3166-1 alpha-2, e.g. US,CA); default: any.",
)
@click.option("--allow-premium", is_flag=True, help="Allow premium-rate and shared-cost numbers.")
@click.option("--json", "as_json", is_flag=True)
def keys_add(
    name: str,
    scopes: str,
    rate_per_s: float | None,
    allow_countries: str | None,
    allow_premium: bool,
    as_json: bool,
) -> None:
    """Create a key and print it, once: only its hash is kept."""
    try:
        check_key_name(name)
    except ValueError as exc:
        raise click.ClickException(f"invalid NAME {exc}") from exc
    try:
        granted = parse_scopes(scopes)
    except ValueError as exc:
        raise click.ClickException(f"invalid --scopes: {exc}") from exc
    rate = rate_per_s if rate_per_s is not None else get_settings().key_rate_per_s
    if not 0 < rate <= MAX_RATE_PER_S:
        raise click.ClickException(
            f"invalid --rate-per-s: {rate:g}; it must be above 0, at most {MAX_RATE_PER_S:g}"
        )
    countries = None
    if allow_countries is not None:
        try:
            countries = parse_countries(allow_countries.split(","))
        except ValueError as exc:
            raise click.ClickException(f"invalid --allow-countries: {exc}") from exc
    key = new_key()
    with database() as conn:
        row = add_key(
            conn,
            name=name,
            key=key,
            scopes=granted,
            rate_per_s=rate,
            countries=countries,
            premium=allow_premium,
        )
    if as_json:
        body = {"name": name, "key": key.key, "scopes": row["scopes"], "rate_per_s": row["rate_per_s"]}
        click.echo(json.dumps(body, indent=2))
        return
    # The key alone on stdout (KEY=$(sespcl keys add …) keeps just it); the rest on stderr.
    click.echo(key.key)
    click.echo(
        f"key {name} added ({', '.join(row['scopes'])}; {row['rate_per_s']:g} requests/s). "
        "This is the only time it is shown: store it now.",
        err=True,
    )


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "id": row["id"],
        "scopes": row["scopes"],
        "rate_per_s": row["rate_per_s"],
        "allow_countries": row["allow_countries"],
        "allow_premium": row["allow_premium"],
        "status": "revoked" if row["revoked_at"] is not None else "active",
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
    }


def _cell(value: Any) -> Any:
    return ",".join(value) if isinstance(value, list) else value


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
def keys_list(as_json: bool) -> None:
    """List keys (never the keys themselves: `id` is their public lookup part)."""
    with database() as conn:
        rows = [_public(r) for r in list_keys(conn)]
    if not as_json:
        rows = [{k: _cell(v) for k, v in r.items()} for r in rows]
    columns = ("name", "status", "scopes", "rate_per_s", "allow_countries", "allow_premium", "last_used_at")
    emit(rows, columns, as_json)


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke a key: every API process refuses it within a few seconds (SESPCL_KEY_CACHE_S)."""
    with database() as conn:
        row, revoked = revoke_key(conn, name)
    if revoked:
        cache_s = get_settings().key_cache_s
        click.echo(f"key {name} revoked; every API process refuses it within {cache_s:g} s")
    else:
        click.echo(f"key {name} was already revoked ({row['revoked_at']:%Y-%m-%d %H:%M:%S %Z})")
