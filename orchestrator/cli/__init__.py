"""`sespcl`: the command line for operators and the service processes."""

from __future__ import annotations

import click

from orchestrator.cli.calls import calls
from orchestrator.cli.demo import demo
from orchestrator.cli.dnc import dnc
from orchestrator.cli.nodes import nodes
from orchestrator.cli.services import db, dispatcher, serve, worker
from orchestrator.cli.trunks import trunks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sespclswitch", message="%(version)s")
def main() -> None:
    """SESPCLSwitch: outbound voice calls through your own SIP carriers and Asterisk farm."""


for command in (serve, dispatcher, worker, db, trunks, nodes, calls, dnc, demo):
    main.add_command(command)
