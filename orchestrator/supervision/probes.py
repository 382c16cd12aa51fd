"""How the watchdog looks for a process's sign of life: one check per supervised process.

http://HOST:PORT/PATH   the process answers 200 there (the API's /health/live)
file:/PATH              a heartbeat file the process touches (dispatcher, workers)
ami:HOST:PORT           an Asterisk node's AMI greets with its banner
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from orchestrator.asterisk.probe import ami_banner
from orchestrator.supervision.heartbeat import last_beat

Kind = Literal["http", "file", "ami"]


@dataclass(frozen=True)
class Check:
    process: str
    """The supervisord process name, `group:name` (a program of one process: `api:api`)."""
    kind: Kind
    target: str

    @classmethod
    def parse(cls, spec: str) -> Check:
        """`NAME=SPEC`; NAME without a group means a program of one process (`api` → `api:api`)."""
        name, sep, target = spec.partition("=")
        if not sep or not name or not target:
            raise ValueError(f"{spec!r}: expected NAME=http://…, NAME=file:/… or NAME=ami:HOST:PORT")
        process = name if ":" in name else f"{name}:{name}"
        if target.startswith(("http://", "https://")):
            if not urlsplit(target).hostname:
                raise ValueError(f"{spec!r}: the URL has no host")
            return cls(process, "http", target)
        if target.startswith("file:/"):
            return cls(process, "file", target.removeprefix("file:"))
        if target.startswith("ami:"):
            host, _, port = target.removeprefix("ami:").rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{spec!r}: expected ami:HOST:PORT")
            return cls(process, "ami", target.removeprefix("ami:"))
        raise ValueError(f"{spec!r}: expected http://…, file:/… or ami:HOST:PORT after '='")


async def sign_of_life(check: Check, session: aiohttp.ClientSession, timeout_s: float) -> float | None:
    """When the process last showed life as this check sees it (now, if it answered), or None."""
    if check.kind == "file":
        return last_beat(Path(check.target))
    if check.kind == "ami":
        host, _, port = check.target.rpartition(":")
        return time.time() if await ami_banner(host, int(port), timeout_s) else None
    try:
        async with session.get(check.target, timeout=aiohttp.ClientTimeout(total=timeout_s)) as reply:
            return time.time() if reply.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
