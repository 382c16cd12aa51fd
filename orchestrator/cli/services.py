"""The service processes (`serve`, `dispatcher`, `worker`, `webhooks run`) and `db migrate`."""

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
    from redis.exceptions import AuthenticationError, AuthorizationError, ResponseError
    from redis.exceptions import ConnectionError as RedisDown

    from orchestrator.domain.errors import SespclError

    try:
        yield
    except SespclError as exc:
        raise click.ClickException(exc.message) from exc
    except (AuthenticationError, AuthorizationError, ResponseError) as exc:
        if isinstance(exc, ResponseError) and "AUTH" not in str(exc):
            raise
        raise click.ClickException(_redis_refused()) from exc
    except RedisDown as exc:
        raise click.ClickException(f"Redis does not answer: {exc}") from exc


def _redis_refused() -> str:
    """Without the secret itself: the URL's password is the thing that was wrong or missing."""
    from urllib.parse import urlsplit

    if urlsplit(get_settings().redis_url).password:
        return "Redis refused the password in REDIS_URL"
    return "Redis requires a password: put it in REDIS_URL (redis://:PASSWORD@HOST:PORT/DB)"


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
def webhooks() -> None:
    """Status callbacks (docs/webhooks.md)."""


@webhooks.command("run")
def run_webhooks() -> None:
    """Deliver the status callbacks in the outbox, signed, retried on schedule (SESPCL_WEBHOOK_*)."""
    from orchestrator.wiring import run_webhooks as run

    _setup()
    with _one_line_errors():
        asyncio_run(run(get_settings()))


@click.command()
@click.option(
    "--supervisor-socket",
    required=True,
    type=click.Path(dir_okay=False),
    help="supervisord's unix socket (its [unix_http_server] file).",
)
@click.option(
    "--check",
    "checks",
    multiple=True,
    required=True,
    metavar="NAME=SPEC",
    help="A process and its sign of life: NAME=http://HOST:PORT/PATH, NAME=file:/PATH (a "
    "heartbeat file) or NAME=ami:HOST:PORT; NAME is supervisord's group:name (or a program's "
    "name when it runs one process). Repeat for each process.",
)
def watchdog(supervisor_socket: str, checks: tuple[str, ...]) -> None:
    """Restart a supervised process whose liveness fails for SESPCL_LIVENESS_FAIL_AFTER_S."""
    import asyncio
    import signal

    from orchestrator.services.watchdog import Watchdog
    from orchestrator.supervision.probes import Check
    from orchestrator.supervision.supervisor_rpc import Supervisor

    _setup()
    try:
        parsed = [Check.parse(spec) for spec in checks]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--check") from exc
    dog = Watchdog(Supervisor(supervisor_socket), parsed, fail_after_s=get_settings().liveness_fail_after_s)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dog.stop)
        await dog.run()

    asyncio_run(run())


@click.command()
def alive() -> None:
    """Exit 0 if this container's process beat its heartbeat (SESPCL_HEARTBEAT_FILE) within
    SESPCL_LIVENESS_FAIL_AFTER_S, else 1: the dispatcher's and workers' healthcheck."""
    import time

    from orchestrator.supervision.heartbeat import last_beat

    settings = get_settings()
    if settings.heartbeat_file is None:
        raise click.ClickException("SESPCL_HEARTBEAT_FILE is not set: nothing to check")
    beat_at = last_beat(settings.heartbeat_file)
    if beat_at is None:
        raise click.ClickException(f"no heartbeat yet at {settings.heartbeat_file}")
    age = time.time() - beat_at
    if age >= settings.liveness_fail_after_s:
        raise click.ClickException(f"the last heartbeat is {age:.0f} s old")
    click.echo(f"alive: last heartbeat {age:.1f} s ago")


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


@db.command()
def upkeep() -> None:
    """Run table upkeep: VACUUM and ANALYZE the tables that need it whenever the server's
    autovacuum is off (every SESPCL_DB_UPKEEP_S). Runs as the schema's owner (DATABASE_URL):
    only a table's owner may VACUUM it."""
    from orchestrator.wiring import run_upkeep

    _setup()
    with _one_line_errors():
        asyncio_run(run_upkeep(get_settings()))


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
