"""`sespcl dnc …`: the do-not-call list, checked at acceptance and again just before dialing."""

from __future__ import annotations

import csv
from pathlib import Path

import click

from orchestrator.cli.output import database, emit
from orchestrator.domain.phone import E164Checker, parse_e164
from orchestrator.domain.text import control_character_position


def _number(value: str) -> str:
    try:
        return parse_e164(value.strip())
    except ValueError as exc:
        raise click.ClickException(f"invalid NUMBER {value!r}: {exc}") from exc


def _reason(value: str | None) -> str | None:
    if value is not None and (len(value) > 200 or control_character_position(value) is not None):
        raise click.ClickException("invalid --reason: at most 200 characters, no control characters")
    return value


@click.group()
def dnc() -> None:
    """Do-not-call list."""


@dnc.command("add")
@click.argument("number")
@click.option("--reason", default=None)
def dnc_add(number: str, reason: str | None) -> None:
    """Add a number (E.164); calls to it end canceled, with the reason."""
    value, why = _number(number), _reason(reason)
    with database() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO dnc (number, reason) VALUES (%s, %s) "
            "ON CONFLICT (number) DO UPDATE SET reason = coalesce(EXCLUDED.reason, dnc.reason)",
            (value, why),
        )
    click.echo(f"{value} is on the do-not-call list")


@dnc.command("remove")
@click.argument("number")
def dnc_remove(number: str) -> None:
    """Take a number off the list."""
    value = _number(number)
    with database() as conn, conn.transaction():
        removed = conn.execute("DELETE FROM dnc WHERE number = %s", (value,)).rowcount
    if not removed:
        raise click.ClickException(f"{value} is not on the do-not-call list")
    click.echo(f"{value} removed from the do-not-call list")


@dnc.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
def dnc_list(as_json: bool, limit: int) -> None:
    """The list, oldest first."""
    with database() as conn:
        rows = conn.execute(
            "SELECT number, reason, added_at FROM dnc ORDER BY added_at, number LIMIT %s", (limit,)
        ).fetchall()
    emit(rows, ("number", "reason", "added_at"), as_json)


@dnc.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", default=None, help="Recorded for every number of the file.")
def dnc_import(file: Path, reason: str | None) -> None:
    """Add every number of FILE: one per line, or CSV whose first column is the number (a
    header row is skipped). Refuses the whole file, changing nothing, if a line is invalid."""
    why = _reason(reason)
    checker = E164Checker()
    numbers: list[str] = []
    # utf-8-sig: spreadsheets write a byte-order mark, which would hide the first number.
    with file.open(newline="", encoding="utf-8-sig") as handle:
        try:
            for line_number, row in enumerate(csv.reader(handle), start=1):
                if not row or not row[0].strip():
                    continue
                value = row[0].strip()
                if line_number == 1 and not any(c.isdigit() for c in value):
                    continue  # a header
                try:
                    numbers.append(checker.check(value))
                except ValueError as exc:
                    raise click.ClickException(
                        f"{file}:{line_number}: {value!r}: {exc}; nothing imported"
                    ) from exc
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{file}: not UTF-8 text ({exc.reason}); nothing imported") from exc
        except csv.Error as exc:
            raise click.ClickException(
                f"{file}: not a list of numbers or a CSV file ({exc}); nothing imported"
            ) from exc
    with database() as conn, conn.transaction():
        conn.execute("CREATE TEMP TABLE dnc_import (number text) ON COMMIT DROP")
        with conn.cursor() as cur, cur.copy("COPY dnc_import (number) FROM STDIN") as copy:
            for value in numbers:
                copy.write_row((value,))
        added = conn.execute(
            "INSERT INTO dnc (number, reason) SELECT DISTINCT number, %s FROM dnc_import "
            "ON CONFLICT (number) DO NOTHING",
            (why,),
        ).rowcount
    click.echo(f"{added} numbers added ({len(numbers) - added} already listed or repeated)")
