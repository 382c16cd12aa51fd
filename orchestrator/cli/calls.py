"""`sespcl calls …`: submit and inspect calls through the REST API."""

from __future__ import annotations

import json
import time
from uuid import UUID

import click

from orchestrator.cli.output import database, print_table
from orchestrator.client import ApiClient, ApiClientError
from orchestrator.domain.call import CallStatus


@click.group()
def calls() -> None:
    """Calls (through the REST API at SESPCL_API_URL with SESPCL_API_KEY)."""


@calls.command("submit")
@click.option("--to", "to", required=True, help="E.164 number to call.")
@click.option("--text", required=True, help="What to say.")
@click.option("--trunk", default=None)
@click.option("--from", "from_", default=None, help="E.164 caller id.")
@click.option("--wait", is_flag=True, help="Wait for a final status; exit 1 unless completed.")
@click.option("--json", "as_json", is_flag=True)
def calls_submit(to: str, text: str, trunk: str | None, from_: str | None, wait: bool, as_json: bool) -> None:
    """Place one call."""
    payload: dict[str, object] = {"to": to, "tts": {"text": text}}
    if trunk:
        payload["trunk"] = trunk
    if from_:
        payload["from"] = from_
    client = ApiClient()
    try:
        call = client.submit(payload)
        while wait and call["status"] not in {s.value for s in CallStatus if s.is_final}:
            time.sleep(0.5)
            call = client.get(call["id"])
    except ApiClientError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(call, indent=2) if as_json else f"{call['id']} {call['status']}")
    if wait and call["status"] != CallStatus.COMPLETED.value:
        raise SystemExit(1)


@calls.command("show")
@click.argument("call_id", type=click.UUID)
@click.option("--json", "as_json", is_flag=True)
def calls_show(call_id: UUID, as_json: bool) -> None:
    """Show one call and its attempts."""
    try:
        call = ApiClient().get(str(call_id))
    except ApiClientError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(call, indent=2))
        return
    for key in (
        "id",
        "to",
        "from",
        "trunk",
        "status",
        "status_reason",
        "created_at",
        "answered_at",
        "ended_at",
        "duration_s",
        "hangup_cause",
    ):
        click.echo(f"{key:14} {call.get(key)}")
    if call.get("attempts"):
        click.echo("")
        print_table(call["attempts"], ("number", "node", "status", "started_at", "ended_at"))


@calls.command("list")
@click.option("--status", type=click.Choice([s.value for s in CallStatus]), default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def calls_list(status: str | None, limit: int, as_json: bool) -> None:
    """List the newest calls."""
    with database() as conn:
        rows = conn.execute(
            "SELECT id, to_number AS to, trunk, status, created_at, ended_at FROM calls "
            "WHERE %(s)s::text IS NULL OR status = %(s)s ORDER BY created_at DESC, id DESC LIMIT %(n)s",
            {"s": status, "n": limit},
        ).fetchall()
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        print_table(rows, ("id", "to", "trunk", "status", "created_at", "ended_at"))
