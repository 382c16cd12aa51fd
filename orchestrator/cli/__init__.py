"""`sespcl`: the command line for operators and the service processes."""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from orchestrator.cli.audio import audio
from orchestrator.cli.calls import calls
from orchestrator.cli.demo import demo
from orchestrator.cli.dnc import dnc
from orchestrator.cli.keys import keys
from orchestrator.cli.nodes import nodes
from orchestrator.cli.report import report
from orchestrator.cli.services import alive, db, dispatcher, serve, watchdog, webhooks, worker
from orchestrator.cli.trunks import trunks
from orchestrator.config import settings_error


class _Commands(click.Group):
    """Every command: a setting that does not validate is one line and exit 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            raise click.ClickException(settings_error(exc)) from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sespclswitch", message="%(version)s")
def main() -> None:
    """SESPCLSwitch: outbound voice calls through your own SIP carriers and Asterisk farm."""


for command in (
    serve,
    dispatcher,
    worker,
    webhooks,
    watchdog,
    alive,
    db,
    trunks,
    nodes,
    calls,
    dnc,
    keys,
    report,
    audio,
    demo,
):
    main.add_command(command)
