"""Which rendered audio may go (pure): the files of the audio directory a prune may look at, and
what a prune did.

A prompt is needed while a call that may still play it is live (queued, which includes a call
waiting for a retry, initiated, ringing, in progress): as its prompt or as one of its
`extra_audio` (a two-way call's replies, its voicemail message). The database applies that rule
(persistence/audio.py); the files are the domain's business because their names are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.domain.audio import AUDIO_EXTENSION

STRAY_FILE_MIN_AGE_S = 3600.0
"""A file in the audio directory without an audio_assets row is garbage once it is this old:
younger, it may be a render whose row is being written, or a temp file being converted."""

_RENDERED = re.compile(rf"(?P<hash>[0-9a-f]{{64}})\.{AUDIO_EXTENSION}")
_PARTIAL = re.compile(rf"\.(?P<hash>[0-9a-f]{{64}})\.{AUDIO_EXTENSION}\..+\.part")
"""speech.render's temp file (`.<hash>.ulaw.<random>.part`), left behind by a killed render."""


@dataclass(frozen=True)
class AudioFile:
    """A file of the audio directory as listed: its name and modification time (epoch s)."""

    name: str
    mtime: float


def audio_hash_of(name: str) -> str | None:
    """The asset hash a file of the audio directory belongs to (a rendered prompt or a render's
    temp file); None for any other file, which a prune never touches."""
    match = _RENDERED.fullmatch(name) or _PARTIAL.fullmatch(name)
    return match["hash"] if match else None


def stray_candidates(files: list[AudioFile], now: float) -> dict[str, list[str]]:
    """Old enough files that belong to an asset, by hash: those whose hash has no row are strays."""
    by_hash: dict[str, list[str]] = {}
    for file in files:
        audio_hash = audio_hash_of(file.name)
        if audio_hash is not None and now - file.mtime >= STRAY_FILE_MIN_AGE_S:
            by_hash.setdefault(audio_hash, []).append(file.name)
    return by_hash


@dataclass(frozen=True)
class AudioUsage:
    """Rendered audio on disk (ready rows), from the sizes the workers stored: no directory walk."""

    prompts: int
    bytes: int


@dataclass(frozen=True)
class PrunedAsset:
    """An audio_assets row a prune deleted: its file is to be deleted next."""

    audio_hash: str
    size_bytes: int


@dataclass
class PruneReport:
    prompts: int = 0
    """audio_assets rows deleted."""
    bytes: int = 0
    """Their size (as stored; their files may be gone already)."""
    files: int = 0
    """Files deleted: the deleted rows' and stray ones."""
    strays: int = 0
    """Of those, files that had no row."""
    kept_recent_files: int = 0
    """Files of deleted rows kept because they were written after the row went: a render of the
    same words, asked again meanwhile, already wrote its new file."""

    def add(self, other: PruneReport) -> None:
        self.prompts += other.prompts
        self.bytes += other.bytes
        self.files += other.files
        self.strays += other.strays
        self.kept_recent_files += other.kept_recent_files
