"""Running `sespcl` as an operator would, and a carrier with its trunk for a test."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.far_ends import Kind, write_far_end
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
def carrier_trunk(name: str, address: str, scenario: str, **options: Any) -> Iterator[Carrier]:
    """A traced SIPp carrier and a trunk of the same name pointing at it, both gone afterwards.
    `options`: Carrier's (audio_dir, media_port, digit) for the far ends that speak or press."""
    carrier = Carrier(name, address, scenario, **options).start()
    sespcl("trunks", "remove", name, "--force")
    add_trunk(name, carrier.address)
    try:
        yield carrier
    finally:
        sespcl("trunks", "remove", name, "--force")
        carrier.stop()


@contextmanager
def speaking_carriers(audio: Path, human: tuple[str, str], voicemail: tuple[str, str]) -> Iterator[None]:
    """Two far ends that speak, each a carrier with its trunk (name, address): a person who says
    a few words and waits, and a voicemail box (greeting, beep, silence), their audio rendered
    into `audio` (tests/far_ends.py)."""
    write_far_end(audio, Kind.HUMAN)
    write_far_end(audio, Kind.MACHINE)
    with (
        carrier_trunk(*human, "human", audio_dir=audio),
        carrier_trunk(*voicemail, "voicemail", audio_dir=audio),
    ):
        yield


def stack_env() -> dict[str, str]:
    """The environment plus the stack's secrets (AMI secret, ARI password), as `make up` made them."""
    env = dict(os.environ)
    state = Path(os.environ.get("SESPCL_STATE_DIR", REPO / ".stack"))
    for line in (state / "secrets.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


def node_drivers() -> dict[str, str]:
    listed = json.loads(sespcl("nodes", "list", "--json").stdout)
    return {str(n["name"]): str(n["driver"]) for n in listed}


def set_node_driver(name: str, driver: str) -> None:
    """Re-register a node of the test stack with another driver, as an operator would."""
    listed = {n["name"]: n for n in json.loads(sespcl("nodes", "list", "--json").stdout)}
    node = listed[name]
    host = str(node["ami_host"])
    result = subprocess.run(
        [SESPCL, "nodes", "add", name, "--ami-host", host, "--ami-port", str(node["ami_port"]),
         "--ari-url", f"http://{host}:8088/ari", "--driver", driver, "--replace"],
        capture_output=True, text=True, timeout=60, env=stack_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def dispatcher_pid() -> int | None:
    """The stack's dispatcher process (the Python one, not its supervising shell)."""
    for pid in subprocess.run(
        ["pgrep", "-f", "bin/sespcl dispatcher"], capture_output=True, text=True
    ).stdout.split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"python" in cmdline[0]:
            return int(pid)
    return None
