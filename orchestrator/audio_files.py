"""The audio directory's files, as a prune sees them (speech.py writes them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.domain.audio_retention import AudioFile


class AudioDirectory:
    def __init__(self, path: Path) -> None:
        self._path = path

    def check(self) -> None:
        """FileNotFoundError (or another OSError) if the directory cannot be listed: a prune
        pointed at the wrong place must not delete rows and leave their files where nobody
        sweeps them."""
        with os.scandir(self._path):
            pass

    @contextmanager
    def scan(self) -> Iterator[Iterator[AudioFile]]:
        """The regular files directly in the directory, one at a time (a million names are not
        held in memory at once)."""
        with os.scandir(self._path) as entries:
            yield (file for entry in entries if (file := _regular_file(entry)) is not None)

    def remove_if_older(self, name: str, before: float) -> bool | None:
        """Delete `name` if it was last written before `before` (epoch s). True: deleted;
        False: kept, it is newer (a render wrote it again meanwhile); None: no such file.
        `name` is a bare file name, never a path: nothing outside the directory goes."""
        if os.sep in name or name in ("", ".", ".."):
            raise ValueError(f"not a file name of the audio directory: {name!r}")
        path = self._path / name
        try:
            if path.lstat().st_mtime >= before:
                return False
            path.unlink()
        except FileNotFoundError:
            return None
        return True


def _regular_file(entry: os.DirEntry[str]) -> AudioFile | None:
    try:
        if entry.is_file(follow_symlinks=False):
            return AudioFile(entry.name, entry.stat(follow_symlinks=False).st_mtime)
    except FileNotFoundError:  # deleted while listed
        pass
    return None
