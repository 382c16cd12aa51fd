"""Text to a prompt file: espeak-ng in this process, then 8 kHz mu-law for a ulaw trunk, written
atomically under its content address."""

from __future__ import annotations

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
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fchmod(handle, 0o644)
            os.fsync(handle)
        finally:
            os.close(handle)
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


def render_each(requests: Iterable[SpeechRequest], audio_dir: Path) -> Iterator[Rendered]:
    """render() of each request, in order, each one's path and ms or its SpeechError. A thread
    writes and syncs one file (fsync waits on the disk) while the next prompt is synthesized."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sespcl-audio-write") as writer:
        waiting: deque[Future[tuple[Path, int]] | SpeechError] = deque()
        for request in requests:
            try:
                waiting.append(writer.submit(store, request, encode(request), audio_dir))
            except SpeechError as exc:
                waiting.append(exc)
            while len(waiting) > 1:
                yield _settled(waiting.popleft())
        while waiting:
            yield _settled(waiting.popleft())


def _settled(pending: Future[tuple[Path, int]] | SpeechError) -> Rendered:
    if isinstance(pending, SpeechError):
        return pending
    try:
        return pending.result()
    except SpeechError as exc:
        return exc
