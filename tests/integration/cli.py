"""Running `sespcl` as an operator would, and a carrier with its trunk for a test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.sipp import REPO, Carrier

SESPCL = str(REPO / ".venv/bin/sespcl")


def sespcl(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SESPCL, *args], input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def add_trunk(name: str, host: str, *extra: str) -> None:
    result = sespcl("trunks", "add", name, "--host", host, *extra)
    assert result.returncode == 0, result.stderr


@contextmanager
def carrier_trunk(name: str, address: str, scenario: str) -> Iterator[Carrier]:
    """A traced SIPp carrier and a trunk of the same name pointing at it, both gone afterwards."""
    carrier = Carrier(name, address, scenario).start()
    sespcl("trunks", "remove", name, "--force")
    add_trunk(name, carrier.address)
    try:
        yield carrier
    finally:
        sespcl("trunks", "remove", name, "--force")
        carrier.stop()
