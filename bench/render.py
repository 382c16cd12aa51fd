"""`make bench-render`: speech renders per second in one worker process, against espeak-ng alone
in the same run.

Renders N distinct short personal prompts ("Hi Margaret, see you Tuesday.", about two seconds
each) and prints, per path, prompts/s per core (prompts over CPU seconds: the process's
own, and its children's for the command-line tools), prompts/s over wall time, the prompts' mean
length and how many times real time that is:

- libespeak-ng alone, in process (the samples only): the bare synthesis, the ceiling;
- `espeak-ng` itself, one process for every text (--stdin, one line a text, one WAV): the same
  synthesis from the command line, plus its pauses between lines;
- `espeak-ng` itself, one process a prompt (a WAV each), on a sample;
- the render as the workers run it, in process (orchestrator.speech: synthesis, silent edges
  cut, resampled, mu-law, temp file + fsync + rename): render() one prompt after another, and
  render_each() as a batch job runs it (a thread writes and syncs while the next is spoken);
- the same over short pieces (full names: what a message in segments renders per call);
- with --database-url: the batch job itself (workers.tts.render_audio_batch, batches of 200:
  one SELECT, the renders, one UPDATE), the database backend's CPU counted too;
- the old per-prompt path (pyttsx3 + a sox process a prompt), on a sample (bench/render_legacy.py).

bench/dispatch.py may call `measure_render()` and print `render_line()` ("render prompts/s"), or
run `python -m bench.render --line` (from the repository's root) and print what it prints.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.domain.audio import SpeechRequest
from orchestrator.speech import available_voices, render, render_each
from orchestrator.speech.espeak import engine

VOICE, RATE_WPM = "en-us", 160
NAMES = (
    "Margaret",
    "John",
    "Aisha",
    "Roberto",
    "Wei",
    "Fatima",
    "Oliver",
    "Chloe",
    "Dmitri",
    "Priya",
    "Kenji",
    "Sofia",
    "Liam",
    "Amara",
    "Mateo",
    "Ingrid",
    "Yusuf",
    "Hannah",
    "Carlos",
    "Mei",
    "Noah",
    "Zainab",
    "Lucas",
    "Elena",
    "Omar",
    "Grace",
    "Ravi",
    "Nadia",
    "Samuel",
    "Ana",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
TIMES = ("three", "noon", "ten thirty", "four fifteen", "nine", "two forty five")
TEMPLATES = (  # each about two seconds spoken at 160 words a minute, with the edge pads
    "Hi {name}, see you {day}.",
    "{name}, see you at {time}.",
    "{name}, your visit is {day}.",
    "Hello {name}, call us {day}.",
)


def prompt_texts(count: int, seed: int = 7) -> list[str]:
    """`count` distinct texts, shuffled (a template's texts not all in a row)."""
    every = {
        template.format(name=name, day=day, time=at)
        for template, name, day, at in itertools.product(TEMPLATES, NAMES, DAYS, TIMES)
    }
    texts = sorted(every)
    random.Random(seed).shuffle(texts)
    if count > len(texts):
        raise SystemExit(f"at most {len(texts)} distinct prompts")
    return texts[:count]


SURNAMES = ("Chen", "Okafor", "Garcia", "Novak", "Patel", "Smith", "Kowalski", "Haddad", "Tanaka", "Olsen")


def name_pieces(count: int) -> list[str]:
    """Distinct full names: the piece a segmented message renders per call ({{name}})."""
    names = sorted(f"{first} {last}" for first, last in itertools.product(NAMES, SURNAMES))
    random.Random(7).shuffle(names)
    return names[:count]


@dataclass(frozen=True)
class Run:
    name: str
    prompts: int
    cpu_s: float
    wall_s: float
    audio_s: float

    @property
    def per_core(self) -> float:
        return self.prompts / self.cpu_s

    @property
    def per_wall_s(self) -> float:
        return self.prompts / self.wall_s

    @property
    def realtime(self) -> float:
        """Seconds of audio made per CPU second."""
        return self.audio_s / self.cpu_s

    @property
    def two_second_per_core(self) -> float:
        """Per core, in prompts of exactly two seconds."""
        return self.realtime / 2


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(name: str, texts: list[str], work: Callable[[], float]) -> Run:
    """`work` renders `texts` and returns the seconds of audio made."""
    cpu, wall = _cpu_s(), time.perf_counter()
    audio_s = work()
    return Run(name, len(texts), _cpu_s() - cpu, time.perf_counter() - wall, audio_s)


def bare_synthesis(texts: list[str]) -> Run:
    speaker = engine()

    def work() -> float:
        samples = sum(speaker.synthesize(text, VOICE, RATE_WPM).size for text in texts)
        return samples / speaker.sample_rate

    return _timed("libespeak-ng alone, in process", texts, work)


ONE_BY_ONE = "render(), one prompt after another"
EACH = "render_each() (a batch job's: writes overlap synthesis)"


def in_process_render(texts: list[str], audio_dir: Path) -> Run:
    def work() -> float:
        return sum(render(SpeechRequest(text=text, voice=VOICE), audio_dir)[1] for text in texts) / 1000

    return _timed(ONE_BY_ONE, texts, work)


def in_process_render_each(texts: list[str], audio_dir: Path, name: str = EACH) -> Run:
    def work() -> float:
        total_ms = 0
        for result in render_each((SpeechRequest(text=text, voice=VOICE) for text in texts), audio_dir):
            if isinstance(result, Exception):
                raise result
            total_ms += result[1]
        return total_ms / 1000

    return _timed(name, texts, work)


def _wav_s(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def _espeak(text: str, wav: Path) -> None:
    subprocess.run(
        ["espeak-ng", "-v", VOICE, "-s", str(RATE_WPM), "-w", str(wav), "--stdin"],
        input=text.encode(),
        check=True,
    )


def espeak_cli_one_process(texts: list[str], out: Path) -> Run:
    def work() -> float:
        _espeak("\n".join(texts), out / "all.wav")
        return _wav_s(out / "all.wav")

    return _timed("espeak-ng CLI, one process, all texts (--stdin, one WAV)", texts, work)


def espeak_cli_per_prompt(texts: list[str], out: Path) -> Run:
    def work() -> float:
        for i, text in enumerate(texts):
            _espeak(text, out / f"cli-{i}.wav")
        return sum(_wav_s(out / f"cli-{i}.wav") for i in range(len(texts)))

    return _timed("espeak-ng CLI, one process a prompt (a WAV each)", texts, work)


def legacy_path(texts: list[str], out: Path) -> Run:
    """The old path in a process of its own, which measures itself after its warm-up."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.render_legacy", str(out)],
        input="\n".join(texts),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(
        f"old path: pyttsx3 + sox a prompt ({figures['fallbacks']} left no WAV in 10 s: CLI)",
        figures["prompts"],
        figures["cpu_s"],
        figures["wall_s"],
        figures["audio_s"],
    )


def measure_render(count: int = 600, audio_dir: Path | None = None, rounds: int = 3) -> Run:
    """The render as a batch job runs it, over `count` distinct two-second prompts, warmed up
    (the engine starts once a process, not once a prompt); the round with the least CPU of
    `rounds` (the machine is shared: the least disturbed one)."""
    available_voices()
    texts = prompt_texts(count)
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="sespcl-bench-render-", dir=audio_dir) as tmp:
            render(SpeechRequest(text="Warm up.", voice=VOICE), Path(tmp))
            runs.append(in_process_render_each(texts, Path(tmp)))
    return min(runs, key=lambda run: run.cpu_s)


def render_line(run: Run) -> str:
    return (
        f"render prompts/s: {run.per_core:.0f} per core (CPU), {run.per_wall_s:.0f} over wall time, "
        f"one process; prompts of {run.audio_s / run.prompts:.2f} s ({run.realtime:.0f}x real time, "
        f"{run.two_second_per_core:.0f} two-second prompts/s per core)"
    )


def _print(runs: list[Run]) -> None:
    head = ("prompts", "/s/core", "/s wall", "mean s", "xRT/core", "2s/core")
    print(f"{'path':<66} " + " ".join(f"{h:>8}" for h in head))
    for run in runs:
        print(
            f"{run.name:<66} {run.prompts:>8} {run.per_core:>8.1f} {run.per_wall_s:>8.1f} "
            f"{run.audio_s / run.prompts:>8.2f} {run.realtime:>8.0f} {run.two_second_per_core:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=600, help="distinct prompts per in-process run")
    parser.add_argument("--sample", type=int, default=40, help="prompts for the per-process paths")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each path is kept")
    parser.add_argument("--database-url", help="also run the batch job against this database")
    parser.add_argument("--audio-dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--line", action="store_true", help="only the 'render prompts/s' line")
    args = parser.parse_args()
    if args.line:
        print(render_line(measure_render(args.prompts, args.audio_dir)))
        return

    texts = prompt_texts(args.prompts)
    sample = texts[: args.sample]
    started = time.perf_counter()
    engine()
    available_voices()
    print(f"engine start (once a process): {1000 * (time.perf_counter() - started):.0f} ms")
    best: dict[str, Run] = {}

    def keep(run: Run) -> None:
        if run.name not in best or run.cpu_s < best[run.name].cpu_s:
            best[run.name] = run

    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="sespcl-bench-render-", dir=args.audio_dir) as tmp:
            out = Path(tmp)
            keep(bare_synthesis(texts))
            keep(espeak_cli_one_process(texts, out))
            keep(in_process_render(texts, out))
            keep(in_process_render_each(texts, out))
            pieces = name_pieces(args.prompts)
            keep(in_process_render_each(pieces, out, "render_each() of name pieces (a segment: {{name}})"))
            if args.database_url:
                from bench.render_batch import batch_job

                keep(batch_job(args.database_url, texts, out))
    with tempfile.TemporaryDirectory(prefix="sespcl-bench-render-", dir=args.audio_dir) as tmp:
        keep(espeak_cli_per_prompt(sample, Path(tmp)))
        keep(legacy_path(sample, Path(tmp)))
    _print(list(best.values()))
    print(render_line(best[EACH]))


if __name__ == "__main__":
    main()
