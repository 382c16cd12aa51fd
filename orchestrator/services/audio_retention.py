"""Audio retention: delete rendered audio no queued or live call needs, and old stray files.

Row first, then file: a file without a row is harmless (the next prune sweeps it), a row without
its file would be a call playing nothing. A deleted row's file is deleted only if it was written
before the row went: the same words asked again meanwhile get a new row, and its render may
already have written the new file under the same name.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Protocol

import structlog

from orchestrator.domain.audio import audio_file_name
from orchestrator.domain.audio_retention import (
    STRAY_FILE_MIN_AGE_S,
    AudioFile,
    PrunedAsset,
    PruneReport,
    stray_candidates,
)
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)


class AudioPruneRepository(Protocol):
    async def candidates(self, older_than: timedelta, after: str, limit: int) -> list[str]: ...

    async def delete_unneeded(self, hashes: list[str], older_than: timedelta) -> list[PrunedAsset]: ...

    async def existing(self, hashes: list[str]) -> set[str]: ...


class AudioFiles(Protocol):
    def check(self) -> None: ...

    def scan(self) -> AbstractContextManager[Iterator[AudioFile]]: ...

    def remove_if_older(self, name: str, before: float) -> bool | None: ...


class AudioPruner:
    def __init__(
        self,
        store: AudioPruneRepository,
        files: AudioFiles,
        *,
        batch: int = 10_000,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._files = files
        self._batch = batch
        self._now = wall_clock

    async def prune(self, older_than: timedelta) -> PruneReport:
        """Every asset older than `older_than` that no live call needs, a batch at a time, then
        the stray files."""
        # A directory that is not there stops the prune before any row goes.
        await asyncio.to_thread(self._files.check)
        report = PruneReport()
        after = ""
        while candidates := await self._store.candidates(older_than, after, self._batch):
            after = candidates[-1]
            report.add(await self._prune_batch(candidates, older_than))
        report.add(await self._sweep_strays())
        log.info(
            "audio.pruned",
            older_than_days=older_than.days,
            prompts=report.prompts,
            bytes=report.bytes,
            files=report.files,
            strays=report.strays,
            kept_recent_files=report.kept_recent_files,
        )
        return report

    async def _prune_batch(self, candidates: list[str], older_than: timedelta) -> PruneReport:
        deleted_from = self._now()
        pruned = await self._store.delete_unneeded(candidates, older_than)
        report = PruneReport(prompts=len(pruned), bytes=sum(asset.size_bytes for asset in pruned))
        names = [audio_file_name(asset.audio_hash) for asset in pruned]
        outcomes = await asyncio.to_thread(self._remove_all, names, deleted_from)
        report.files = outcomes.count(True)
        report.kept_recent_files = outcomes.count(False)
        return report

    def _remove_all(self, names: list[str], before: float) -> list[bool | None]:
        """In one thread for the whole batch: a thread hop per file cost more than the unlink."""
        return [self._files.remove_if_older(name, before) for name in names]

    async def _sweep_strays(self) -> PruneReport:
        """The directory in chunks of a batch: each chunk's old files of assets, less those
        whose row exists."""
        now = self._now()
        report = PruneReport()
        with self._files.scan() as files:
            while chunk := await asyncio.to_thread(_take, files, self._batch):
                by_hash = stray_candidates(chunk, now)
                if not by_hash:
                    continue
                known = await self._store.existing(sorted(by_hash))
                names = [
                    name for audio_hash, found in by_hash.items() if audio_hash not in known for name in found
                ]
                # The age is checked again at deletion: a render of these words since the listing
                # wrote the file anew.
                outcomes = await asyncio.to_thread(self._remove_all, names, now - STRAY_FILE_MIN_AGE_S)
                removed = outcomes.count(True)
                report.files += removed
                report.strays += removed
        return report


def _take(files: Iterator[AudioFile], n: int) -> list[AudioFile]:
    return list(itertools.islice(files, n))


class ScheduledPrune:
    """`AudioPruner.prune` every `every_s` (0: never), keeping `keep_days`: in `sespcl db upkeep`."""

    def __init__(self, pruner: AudioPruner, *, every_s: float, keep_days: int) -> None:
        self._pruner = pruner
        self._every_s = every_s
        self._keep = timedelta(days=keep_days)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if self._every_s > 0:
            await every(self._every_s, self._step, self._stopping, failure_event="audio.prune_failed")

    async def _step(self) -> None:
        await self._pruner.prune(self._keep)
