"""Text to speech: pyttsx3 over espeak-ng, then sox to 8 kHz mu-law for a ulaw trunk."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import wave
from functools import lru_cache
from pathlib import Path

import pyttsx3

from orchestrator.domain.audio import SpeechRequest, audio_file_name


class SpeechError(Exception):
    """Rendering failed; the message says why in one line. `permanent`: trying again cannot
    help (an unknown voice); otherwise it may (a tool that crashed or timed out)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


_engine_lock = threading.Lock()


@lru_cache(maxsize=1)
def _engine() -> pyttsx3.Engine:
    return pyttsx3.init("espeak")


@lru_cache(maxsize=1)
def available_voices() -> frozenset[str]:
    """Every name a voice may be given by: its id ('gmw/en-us') and its short name ('en-us')."""
    names: set[str] = set()
    with _engine_lock:
        for voice in _engine().getProperty("voices"):
            names.add(str(voice.id).lower())
            names.add(str(voice.id).rsplit("/", 1)[-1].lower())
    return frozenset(names)


def _wait_for_wav(path: Path, timeout_s: float) -> bool:
    """True once `path` is a complete WAV with at least one frame."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with wave.open(str(path), "rb") as reader:
                frames = reader.getnframes()
                width = reader.getsampwidth()
            if frames > 0 and path.stat().st_size >= 44 + frames * width:
                return True
        except (OSError, EOFError, wave.Error):
            pass
        time.sleep(0.005)
    return False


def _render_with_espeak_cli(request: SpeechRequest, wav: Path) -> None:
    """espeak-ng's own command line; the text goes on stdin, never as an argument."""
    rate = str(int(request.options.get("rate", 160)))
    try:
        subprocess.run(
            ["espeak-ng", "-v", request.voice, "-s", rate, "-w", str(wav), "--stdin"],
            input=request.text.encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpeechError(f"the speech engine produced no audio ({exc})") from exc
    if not _wait_for_wav(wav, timeout_s=1.0):
        raise SpeechError("the speech engine produced no audio")


def render(request: SpeechRequest, audio_dir: Path) -> tuple[Path, int]:
    """Render to `<audio_dir>/<key>.ulaw`, atomically (temp file + rename); return path and ms.

    Content addressing makes a rerun harmless: the same request always lands on the same name.
    """
    if request.voice.lower() not in available_voices():
        raise SpeechError(f"unknown voice {request.voice!r}", permanent=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    target = audio_dir / audio_file_name(request.key())
    with tempfile.TemporaryDirectory(prefix="sespcl-tts-") as tmp:
        wav = Path(tmp) / "speech.wav"
        with _engine_lock:
            engine = _engine()
            engine.setProperty("voice", request.voice)
            engine.setProperty("rate", int(request.options.get("rate", 160)))
            engine.save_to_file(request.text, str(wav))
            engine.runAndWait()
            # pyttsx3's espeak driver writes the WAV from espeak's callback, which can finish
            # after runAndWait returns: wait for the complete file while holding the engine.
            rendered = _wait_for_wav(wav, timeout_s=10.0)
        if not rendered:
            # Seen once in a worker just restarted after a SIGKILL: the driver's callback never
            # wrote the file. The same espeak-ng, called directly, renders the same words (to
            # another file: a late callback must not write into it).
            wav = Path(tmp) / "speech-cli.wav"
            _render_with_espeak_cli(request, wav)
        # A name of its own: two workers (each PID 1 in its container) may render one prompt.
        handle, name = tempfile.mkstemp(dir=audio_dir, prefix=f".{target.name}.", suffix=".part")
        os.close(handle)
        partial = Path(name)
        try:
            subprocess.run(
                ["sox", str(wav), "-r", "8000", "-c", "1", "-t", "ul", str(partial)],
                check=True,
                capture_output=True,
                timeout=60,
            )
            partial.chmod(0o644)
            with partial.open("rb") as written:
                os.fsync(written.fileno())  # whole on disk before Asterisk can see the name
        except (OSError, subprocess.SubprocessError) as exc:
            partial.unlink(missing_ok=True)
            raise SpeechError(f"sox could not convert the audio: {exc}") from exc
        os.replace(partial, target)
    duration_ms = target.stat().st_size // 8  # 8,000 one-byte samples a second
    return target, duration_ms
