"""SIPp far ends for benchmarks: one SIPp process per rendered greeting, each on its own port
of one loopback address, each a trunk of the node (written as `sespcl trunks add` writes it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from orchestrator.domain.errors import NotFound
from orchestrator.domain.trunk import TrunkSpec
from orchestrator.persistence.trunks import TrunkStore
from tests.far_ends import Kind, RenderedGreeting

REPO = Path(__file__).resolve().parents[1]
SCENARIO = {Kind.HUMAN: "human", Kind.MACHINE: "voicemail"}
_PID = re.compile(rb"PID=\[(\d+)\]")


@dataclass(frozen=True)
class FarEnd:
    greeting: RenderedGreeting
    trunk: str
    port: int
    pid: int


async def start_far_end(greeting: RenderedGreeting, index: int, address: str, state: Path) -> FarEnd:
    """SIPp answering on address:5200+index, streaming this greeting (in its own directory, under
    the name the scenario streams). `-bg` returns once SIPp has bound its sockets: no waiting."""
    workdir = state / f"far-end-{index:03d}"
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = SCENARIO[greeting.greeting.kind]
    target = workdir / f"{scenario}.ulaw"
    target.unlink(missing_ok=True)
    target.symlink_to(greeting.path.resolve())
    port, media_port = 5200 + index, 42000 + 4 * index
    process = await asyncio.create_subprocess_exec(
        "sipp",
        *("-i", address, "-p", str(port), "-mi", address, "-mp", str(media_port)),
        *("-sf", str(REPO / f"sipp/uas-{scenario}.xml"), "-nostdin", "-bg", "-aa"),
        *("-trace_err", "-error_file", str(workdir / "errors.log"), "-deadcall_wait", "5000"),
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    found = _PID.search(out)
    if found is None:
        raise RuntimeError(f"sipp for far end {index} did not start: {out.decode(errors='replace')[-400:]}")
    return FarEnd(greeting, f"amd-bench-{index:03d}", port, int(found.group(1)))


def stop_far_ends(far_ends: list[FarEnd]) -> None:
    for far_end in far_ends:
        with contextlib.suppress(ProcessLookupError):
            os.kill(far_end.pid, signal.SIGTERM)


def add_trunks(database_url: str, far_ends: list[FarEnd], address: str) -> None:
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        store = TrunkStore(conn)
        for far_end in far_ends:
            spec = TrunkSpec(name=far_end.trunk, host=address, port=far_end.port, codecs=("ulaw",))
            _remove_quietly(store, far_end.trunk)
            store.save(spec, create=True)


def remove_trunks(database_url: str, far_ends: list[FarEnd]) -> None:
    with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        store = TrunkStore(conn)
        for far_end in far_ends:
            _remove_quietly(store, far_end.trunk)


def _remove_quietly(store: TrunkStore, name: str) -> None:
    # A trunk left by an interrupted run is replaced; "no such trunk" is the usual case.
    with contextlib.suppress(NotFound):
        store.remove(name, force=True)
