"""`sespcl audio`: the rendered prompts on disk."""

from __future__ import annotations

import click

from orchestrator.config import get_settings
from orchestrator.loop import asyncio_run


@click.group()
def audio() -> None:
    """Rendered audio (prompts, replies, voicemail messages) in SESPCL_AUDIO_DIR."""


@audio.command()
@click.option(
    "--older-than-days",
    type=click.IntRange(min=1),
    default=None,
    help="Delete audio rendered longer ago than this [default: SESPCL_AUDIO_KEEP_DAYS, 7].",
)
def prune(older_than_days: int | None) -> None:
    """Delete rendered audio that no queued or live call needs (its row, then its file), and
    files of the audio directory over an hour old that have no row. Audio still rendering, or
    that a call waiting for a retry may play, is kept; words asked for again later are rendered
    again. `sespcl db upkeep` runs it every SESPCL_AUDIO_PRUNE_EVERY_S (a day)."""
    from datetime import timedelta

    from orchestrator.domain.errors import StoreError
    from orchestrator.logs import configure_logging
    from orchestrator.wiring import audio_pruner

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    days = older_than_days if older_than_days is not None else settings.audio_keep_days
    try:
        report = asyncio_run(audio_pruner(settings, "sespcl-cli").prune(timedelta(days=days)))
    except StoreError as exc:
        raise click.ClickException(f"the database did not answer the prune: {exc.message}") from exc
    except OSError as exc:
        raise click.ClickException(f"the audio directory {settings.audio_dir}: {exc}") from exc
    click.echo(
        f"{report.prompts} prompts older than {days} days deleted ({_size(report.bytes)}); "
        f"{report.files} files deleted, {report.strays} of them without a row"
    )
    if report.kept_recent_files:
        click.echo(f"{report.kept_recent_files} files kept: rendered again since their row went")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
