"""Audio retention: which files a prune may touch, the order it works in (row, then file, and never
a file written again since its row went), its batches, and `sespcl audio prune`'s output."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.audio_files import AudioDirectory
from orchestrator.domain.audio_retention import (
    STRAY_FILE_MIN_AGE_S,
    AudioFile,
    PrunedAsset,
    audio_hash_of,
    stray_candidates,
)
from orchestrator.domain.errors import StoreUnavailable
from orchestrator.services.audio_retention import AudioPruner

OLD = "a" * 64
NEEDED = "b" * 64
RERENDERED = "c" * 64
STRAY = "d" * 64
FRESH_STRAY = "e" * 64
NOW = 1_800_000_000.0
WEEK = timedelta(days=7)


def test_only_the_files_of_assets_are_looked_at() -> None:
    assert audio_hash_of(f"{OLD}.ulaw") == OLD
    assert audio_hash_of(f".{OLD}.ulaw.k3j_x9.part") == OLD  # a killed render's temp file
    for other in (
        f"{OLD}.wav",
        f"{OLD[:63]}.ulaw",
        f"{OLD.upper()}.ulaw",
        "greeting.ulaw",
        f"../{OLD}.ulaw",
        f"{OLD}.ulaw.bak",
        "README",
    ):
        assert audio_hash_of(other) is None, other


def test_stray_candidates_are_the_old_files_of_assets_by_hash() -> None:
    hour = STRAY_FILE_MIN_AGE_S
    files = [
        AudioFile(f"{STRAY}.ulaw", NOW - hour - 1),
        AudioFile(f".{STRAY}.ulaw.abc.part", NOW - 2 * hour),
        AudioFile(f"{FRESH_STRAY}.ulaw", NOW - hour + 5),  # may be a render whose row is coming
        AudioFile("operator-greeting.ulaw", NOW - 100 * hour),  # not ours
    ]
    assert stray_candidates(files, NOW) == {STRAY: [f"{STRAY}.ulaw", f".{STRAY}.ulaw.abc.part"]}


class Store:
    """The prune's store as PostgreSQL would answer: `needed` hashes are kept by the delete."""

    def __init__(
        self, assets: dict[str, int], needed: set[str], calls_log: list[str], older_than: timedelta = WEEK
    ) -> None:
        self.older_than = older_than
        self.assets = dict(assets)  # hash -> size
        self.needed = needed
        self.log = calls_log
        self.batches: list[list[str]] = []

    async def candidates(self, older_than: timedelta, after: str, limit: int) -> list[str]:
        assert older_than == self.older_than
        return sorted(h for h in self.assets if h > after)[:limit]

    async def delete_unneeded(self, hashes: list[str], older_than: timedelta) -> list[PrunedAsset]:
        self.batches.append(hashes)
        gone = [h for h in hashes if h not in self.needed]
        for audio_hash in gone:
            self.log.append(f"row {audio_hash[:1]}")
        return [PrunedAsset(h, self.assets.pop(h)) for h in gone]

    async def existing(self, hashes: list[str]) -> set[str]:
        return {h for h in hashes if h in self.assets}


class Files:
    def __init__(self, mtimes: dict[str, float], calls_log: list[str]) -> None:
        self.mtimes = dict(mtimes)
        self.log = calls_log

    def check(self) -> None:
        pass

    @contextmanager
    def scan(self) -> Iterator[Iterator[AudioFile]]:
        yield iter([AudioFile(name, mtime) for name, mtime in self.mtimes.items()])

    def remove_if_older(self, name: str, before: float) -> bool | None:
        if name not in self.mtimes:
            return None
        if self.mtimes[name] >= before:
            return False
        del self.mtimes[name]
        self.log.append(f"file {name[:1]}")
        return True


async def test_a_prune_deletes_each_unneeded_row_then_its_file_and_sweeps_old_strays() -> None:
    log: list[str] = []
    store = Store({OLD: 16_000, NEEDED: 8_000, RERENDERED: 24_000}, {NEEDED}, log)
    files = Files(
        {
            f"{OLD}.ulaw": NOW - 9 * 86400,
            f"{NEEDED}.ulaw": NOW - 9 * 86400,
            f"{RERENDERED}.ulaw": NOW + 1,  # its words asked again: written after the row went
            f"{STRAY}.ulaw": NOW - 2 * 3600,
            f"{FRESH_STRAY}.ulaw": NOW - 60,
        },
        log,
    )
    report = await AudioPruner(store, files, wall_clock=lambda: NOW).prune(WEEK)

    assert (report.prompts, report.bytes) == (2, 40_000)
    assert (report.files, report.strays, report.kept_recent_files) == (2, 1, 1)
    assert set(files.mtimes) == {f"{NEEDED}.ulaw", f"{RERENDERED}.ulaw", f"{FRESH_STRAY}.ulaw"}
    assert set(store.assets) == {NEEDED}
    assert log.index(f"row {OLD[:1]}") < log.index(f"file {OLD[:1]}")


async def test_a_prune_goes_in_batches_past_the_kept_ones() -> None:
    hashes = [f"{i:064x}" for i in range(7)]
    store = Store(dict.fromkeys(hashes, 8), {hashes[0], hashes[3]}, [])
    strays = {f"{i:064x}.ulaw": NOW - 7200 for i in range(100, 107)}
    kept = {f"{hashes[0]}.ulaw": NOW - 9 * 86400, f"{hashes[3]}.ulaw": NOW - 9 * 86400}
    files = Files({**strays, **kept}, [])
    report = await AudioPruner(store, files, batch=3, wall_clock=lambda: NOW).prune(WEEK)
    # kept rows are not offered again: the next batch starts after the last hash seen
    assert store.batches == [hashes[0:3], hashes[3:6], hashes[6:7]]
    assert report.prompts == 5 and set(store.assets) == {hashes[0], hashes[3]}
    # the directory, in chunks of 3 too: every stray found, the files of kept rows left
    assert (report.strays, set(files.mtimes)) == (7, set(kept))


def test_the_audio_directory_deletes_only_files_written_before(tmp_path: Path) -> None:
    directory = AudioDirectory(tmp_path)
    old, new = tmp_path / f"{OLD}.ulaw", tmp_path / f"{RERENDERED}.ulaw"
    old.write_bytes(b"\xff" * 80)
    new.write_bytes(b"\xff" * 80)
    before = time.time() - 10
    os.utime(old, (before - 5, before - 5))
    with directory.scan() as files:
        assert {f.name for f in files} == {old.name, new.name}
    assert directory.remove_if_older(new.name, before) is False and new.exists()
    assert directory.remove_if_older(old.name, before) is True and not old.exists()
    assert directory.remove_if_older(old.name, before) is None
    with pytest.raises(ValueError):
        directory.remove_if_older(f"../{OLD}.ulaw", before)
    directory.check()
    with pytest.raises(FileNotFoundError):
        AudioDirectory(tmp_path / "elsewhere").check()


def _invoke(monkeypatch: pytest.MonkeyPatch, pruner: AudioPruner, *args: str) -> tuple[int, str]:
    from orchestrator import wiring
    from orchestrator.cli import main
    from orchestrator.config import get_settings

    monkeypatch.setattr(wiring, "audio_pruner", lambda settings, name: pruner)
    monkeypatch.setenv("SESPCL_LOG_JSON", "true")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["audio", "prune", *args])
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_cli_prune_reports_what_it_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store({OLD: 3 * 1024 * 1024, NEEDED: 10}, {NEEDED}, [], older_than=timedelta(days=30))
    files = Files({f"{OLD}.ulaw": NOW - 30 * 86400}, [])
    pruner = AudioPruner(store, files, wall_clock=lambda: NOW)
    code, output = _invoke(monkeypatch, pruner, "--older-than-days", "30")
    assert code == 0, output
    assert "1 prompts older than 30 days deleted (3.0 MB); 1 files deleted, 0 of them without a row" in output


def test_cli_prune_deletes_no_row_when_the_audio_directory_is_not_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = Store({OLD: 16_000}, set(), [])
    pruner = AudioPruner(store, AudioDirectory(tmp_path / "elsewhere"), wall_clock=lambda: NOW)
    code, output = _invoke(monkeypatch, pruner)
    assert code == 1 and "the audio directory" in output and "elsewhere" in output
    assert store.assets == {OLD: 16_000} and store.batches == []


def test_cli_prune_refuses_a_zero_age_and_reports_a_database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down(Store):
        async def candidates(self, older_than: timedelta, after: str, limit: int) -> list[str]:
            raise StoreUnavailable("connection refused")

    pruner = AudioPruner(Down({}, set(), []), Files({}, []), wall_clock=lambda: NOW)
    code, output = _invoke(monkeypatch, pruner, "--older-than-days", "0")
    assert code == 2 and "--older-than-days" in output
    code, output = _invoke(monkeypatch, pruner)
    assert code == 1 and "the database did not answer the prune: connection refused" in output
