"""The service processes (`serve`, `dispatcher`, `worker`) and `db migrate`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from orchestrator.config import get_settings
from orchestrator.logs import configure_logging
from orchestrator.loop import asyncio_run


def _setup() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A database or Redis that does not answer at start is one line and exit 1 (the supervisor
    starts the process again), not a traceback."""
    from redis.exceptions import ConnectionError as RedisDown

    from orchestrator.domain.errors import SespclError

    try:
        yield
    except SespclError as exc:
        raise click.ClickException(exc.message) from exc
    except RedisDown as exc:
        raise click.ClickException(f"Redis does not answer: {exc}") from exc


@click.command()
def serve() -> None:
    """Run the HTTP API (SESPCL_API_HOST:SESPCL_API_PORT, default 127.0.0.1:5000)."""
    from orchestrator.wiring import serve as run

    _setup()
    settings = get_settings()
    with _one_line_errors():
        try:
            run(settings)
        except OSError as exc:  # the port is taken, or the address is not this machine's
            raise click.ClickException(
                f"cannot serve on {settings.api_host}:{settings.api_port}: {exc.strerror or exc}"
            ) from exc


@click.command()
def dispatcher() -> None:
    """Run the dispatcher: originate queued calls on the Asterisk farm and follow them."""
    from orchestrator.wiring import run_dispatcher

    _setup()
    with _one_line_errors():
        asyncio_run(run_dispatcher(get_settings()))


@click.command()
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker for speech renders and event recording."""
    from orchestrator.wiring import run_worker

    _setup()
    with _one_line_errors():
        run_worker(get_settings(), burst=burst)


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
def migrate() -> None:
    """Apply schema.sql (safe to repeat)."""
    import psycopg

    from orchestrator.domain.errors import Unavailable
    from orchestrator.persistence.db import migrate as apply

    try:
        apply(get_settings().database_url)
    except Unavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(f"the schema could not be applied: {exc}") from exc
    click.echo("schema up to date")


@db.command("prune-cdr")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="Keep CDRs younger than this. They settle calls whose end was not seen, which happens "
    "within hours: a day is the least kept.",
)
def prune_cdr(older_than_days: int) -> None:
    """Delete the nodes' old CDRs (the table grows by one row per call; run it from cron)."""
    from datetime import timedelta

    from orchestrator.cli.output import database
    from orchestrator.persistence.cdr import prune

    with database() as conn:
        deleted = prune(conn, timedelta(days=older_than_days))
    click.echo(f"{deleted} CDRs older than {older_than_days} days deleted")
