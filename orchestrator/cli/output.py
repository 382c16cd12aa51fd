"""Output conventions of `sespcl`: aligned tables for people, --json for machines."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import psycopg
from psycopg.rows import DictRow
from pydantic import ValidationError

from orchestrator.config import get_settings
from orchestrator.domain.errors import SespclError
from orchestrator.persistence.db import connect


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def emit(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        print_table(rows, columns)


@contextmanager
def database() -> Iterator[psycopg.Connection[DictRow]]:
    """A connection for one command; domain and validation errors become one clear line, exit 1."""
    try:
        conn = connect(get_settings().database_url)
    except SespclError as exc:
        raise click.ClickException(exc.message) from exc
    try:
        with conn:
            yield conn
    except SespclError as exc:
        raise click.ClickException(exc.message) from exc


def validation_message(exc: ValidationError, option_names: dict[str, str] | None = None) -> str:
    """The first problem, named the way the user typed it (`--caller-id`, not caller_id)."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    option = (option_names or {}).get(field, "--" + field.replace("_", "-") if field else "")
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"invalid {option}: {message}" if option else message
