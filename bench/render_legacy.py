"""The render path the workers took before speech moved in process, kept as bench/render.py's
baseline: pyttsx3's espeak driver to a temporary WAV (waited for), then one `sox` process per
prompt to raw 8 kHz mu-law, temp file + fsync + rename. Run in a process of its own: pyttsx3
drives the same libespeak-ng, whose one callback per process would clash with the new engine's.

    python -m bench.render_legacy OUT_DIR < texts (one per line)   # prints one JSON line
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import pyttsx3


def _wait_for_wav(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with wave.open(str(path), "rb") as reader:
                frames, width = reader.getnframes(), reader.getsampwidth()
            if frames > 0 and path.stat().st_size >= 44 + frames * width:
                return True
        except (OSError, EOFError, wave.Error):
            pass
        time.sleep(0.005)
    return False


def render_old(engine: pyttsx3.Engine, text: str, target: Path) -> bool:
    """True when pyttsx3 left no WAV and espeak-ng's command line rendered it, as the old path
    did then."""
    with tempfile.TemporaryDirectory(prefix="sespcl-tts-") as tmp:
        wav = Path(tmp) / "speech.wav"
        engine.setProperty("voice", "en-us")
        engine.setProperty("rate", 160)
        engine.save_to_file(text, str(wav))
        engine.runAndWait()
        fell_back = not _wait_for_wav(wav, timeout_s=10.0)
        if fell_back:
            wav = Path(tmp) / "speech-cli.wav"
            subprocess.run(
                ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), "--stdin"],
                input=text.encode(),
                check=True,
            )
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(handle)
        partial = Path(name)
        subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-t", "ul", str(partial)], check=True)
        partial.chmod(0o644)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    return fell_back


def _cpu_s() -> float:
    """This process's CPU time and its children's (the sox processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    out = Path(sys.argv[1])
    texts = [line.strip() for line in sys.stdin if line.strip()]
    engine = pyttsx3.init("espeak")
    render_old(engine, "Warm up.", out / "warmup.ulaw")  # the engine's start is not a prompt's
    cpu, wall = _cpu_s(), time.perf_counter()
    fallbacks = sum(render_old(engine, text, out / f"{i}.ulaw") for i, text in enumerate(texts))
    cpu, wall = _cpu_s() - cpu, time.perf_counter() - wall
    audio_s = sum((out / f"{i}.ulaw").stat().st_size for i in range(len(texts))) / 8000
    figures = {
        "prompts": len(texts),
        "cpu_s": cpu,
        "wall_s": wall,
        "audio_s": audio_s,
        "fallbacks": fallbacks,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
