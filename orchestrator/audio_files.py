"""The audio directory's files, as a prune sees them (speech.py writes them)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.domain.audio_retention import AudioFile


class AudioDirectory:
    def __init__(self, path: Path) -> None:
        self._path = path

    def listing(self) -> list[AudioFile]:
        """Every regular file directly in the directory. A directory that does not exist raises
        FileNotFoundError: a prune pointed at the wrong place must not delete rows and leave
        their files behind where nobody sweeps them."""
        files: list[AudioFile] = []
        with os.scandir(self._path) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        files.append(AudioFile(entry.name, entry.stat(follow_symlinks=False).st_mtime))
                except FileNotFoundError:  # deleted while listed
                    continue
        return files

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
