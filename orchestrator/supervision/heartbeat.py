"""A heartbeat file: touched from the process's own loop, so a stuck loop stops touching it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


def beat(path: Path) -> None:
    """Set the file's time to now, creating it (and its directory) the first time."""
    try:
        os.utime(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def last_beat(path: Path) -> float | None:
    """When the file was last touched (seconds since the epoch), or None if it is not there."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


async def beat_forever(path: Path, interval_s: float, stopping: asyncio.Event) -> None:
    """Beat every `interval_s` from the running event loop until `stopping` is set."""
    while not stopping.is_set():
        beat(path)
        try:
            await asyncio.wait_for(stopping.wait(), interval_s)
        except TimeoutError:
            pass
