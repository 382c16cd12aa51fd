"""Text to a prompt file: espeak-ng in this process, then 8 kHz mu-law for a ulaw trunk, written
atomically under its content address."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from orchestrator.domain.audio import SpeechRequest, audio_file_name
from orchestrator.domain.telephone_audio import duration_ms, telephone_audio
from orchestrator.speech.espeak import EngineError, UnknownVoice, engine

DEFAULT_RATE_WPM = 160


class SpeechError(Exception):
    """Rendering failed; the message says why in one line. `permanent`: trying again cannot
    help (an unknown voice); otherwise it may (the engine failed, the disk was full)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@lru_cache(maxsize=1)
def available_voices() -> frozenset[str]:
    """Every name a voice may be given by: its id ('gmw/en-us') and its short name ('en-us')."""
    names: set[str] = set()
    for voice_id in engine().voice_ids():
        names.add(voice_id.lower())
        names.add(voice_id.rsplit("/", 1)[-1].lower())
    return frozenset(names)


def encode(request: SpeechRequest) -> bytes:
    """The request's words as the prompt file's bytes (8 kHz mu-law)."""
    if request.voice.lower() not in available_voices():
        raise SpeechError(f"unknown voice {request.voice!r}", permanent=True)
    try:
        speaker = engine()
        samples = speaker.synthesize(
            request.text, request.voice, int(request.options.get("rate", DEFAULT_RATE_WPM))
        )
    except UnknownVoice as exc:
        raise SpeechError(str(exc), permanent=True) from exc
    except EngineError as exc:
        raise SpeechError(f"the speech engine failed: {exc}") from exc
    if samples.size == 0:
        raise SpeechError("the speech engine produced no audio")
    return telephone_audio(samples, speaker.sample_rate)


def write_atomically(target: Path, data: bytes) -> None:
    """Whole on disk before Asterisk can see the name: a temp file of its own (two workers may
    render one prompt at once), 0644, fsync, then rename over the name."""
    name = _write_temp(target, data)
    try:
        _fsync_file(name)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def store(request: SpeechRequest, audio: bytes, audio_dir: Path) -> tuple[Path, int]:
    """`audio` as `<audio_dir>/<key>.ulaw`; its path and length in ms."""
    target = audio_dir / audio_file_name(request.key())
    try:
        audio_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(target, audio)
    except OSError as exc:
        raise SpeechError(f"the audio could not be written: {exc}") from exc
    return target, duration_ms(len(audio))


def render(request: SpeechRequest, audio_dir: Path) -> tuple[Path, int]:
    """Render to `<audio_dir>/<key>.ulaw`; return its path and length in ms.

    Content addressing makes a rerun harmless: the same request always lands on the same name.
    """
    return store(request, encode(request), audio_dir)


Rendered = tuple[Path, int] | SpeechError


WRITE_BATCH = 25
"""Prompts written with one sync of the file system (render_each): an fsync each cost about a
third of a render here."""


def render_each(requests: Iterable[SpeechRequest], audio_dir: Path) -> Iterator[Rendered]:
    """render() of each request, in order, each one's path and ms or its SpeechError. Prompts are
    written WRITE_BATCH at a time (store_many: one sync for all), by a thread, while the next
    ones are synthesized."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sespcl-audio-write") as writer:
        waiting: deque[Future[list[Rendered]]] = deque()
        batch: list[tuple[SpeechRequest, bytes] | SpeechError] = []
        for request in requests:
            try:
                batch.append((request, encode(request)))
            except SpeechError as exc:
                batch.append(exc)
            if len(batch) == WRITE_BATCH:
                waiting.append(writer.submit(store_many, batch, audio_dir))
                batch = []
            while len(waiting) > 1:
                yield from waiting.popleft().result()
        if batch:
            waiting.append(writer.submit(store_many, batch, audio_dir))
        while waiting:
            yield from waiting.popleft().result()


def store_many(items: list[tuple[SpeechRequest, bytes] | SpeechError], audio_dir: Path) -> list[Rendered]:
    """store() of each (request, audio), keeping each SpeechError in its place; every file is
    whole on disk before any of their names is seen: all are written to temp files, the file
    system is synced once, then each is renamed over its name."""
    try:
        audio_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [
            item if isinstance(item, SpeechError) else SpeechError(f"the audio could not be written: {exc}")
            for item in items
        ]
    written: list[tuple[str, Path, int] | SpeechError] = []
    for item in items:
        if isinstance(item, SpeechError):
            written.append(item)
            continue
        request, audio = item
        target = audio_dir / audio_file_name(request.key())
        try:
            written.append((_write_temp(target, audio), target, duration_ms(len(audio))))
        except OSError as exc:
            written.append(SpeechError(f"the audio could not be written: {exc}"))
    temps = [w[0] for w in written if not isinstance(w, SpeechError)]
    try:
        _sync_file_system(audio_dir, temps)
    except OSError as exc:
        for name in temps:
            Path(name).unlink(missing_ok=True)
        return [
            w if isinstance(w, SpeechError) else SpeechError(f"the audio could not be synced: {exc}")
            for w in written
        ]
    results: list[Rendered] = []
    for entry in written:
        if isinstance(entry, SpeechError):
            results.append(entry)
            continue
        name, target, ms = entry
        try:
            os.replace(name, target)
            results.append((target, ms))
        except OSError as exc:
            Path(name).unlink(missing_ok=True)
            results.append(SpeechError(f"the audio could not be written: {exc}"))
    return results


def _write_temp(target: Path, data: bytes) -> str:
    """`data` in a temp file of its own next to `target` (0644, not yet synced); its name."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fchmod(handle, 0o644)
        finally:
            os.close(handle)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return name


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


def _sync_file_system(directory: Path, names: list[str]) -> None:
    """Everything written to the file system holding `directory` on disk: one syncfs(2) where
    the C library has it, else an fsync of each of `names`."""
    if not names:
        return
    libc = _libc()
    syncfs = getattr(libc, "syncfs", None) if libc is not None else None
    if syncfs is not None:
        handle = os.open(directory, os.O_RDONLY)
        try:
            if syncfs(handle) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))
        finally:
            os.close(handle)
        return
    for name in names:
        _fsync_file(name)


def _fsync_file(name: str) -> None:
    handle = os.open(name, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
