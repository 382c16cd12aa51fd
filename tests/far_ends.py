"""What the SIPp far ends say: spoken greetings rendered at run time (never committed).

espeak-ng speaks each greeting (voice, speed and pitch vary), sox resamples it to raw 8 kHz
mono µ-law (what sipp/uas-human.xml and sipp/uas-voicemail.xml stream with `rtp_stream`),
with silence before it (the far end's pause before speaking), a 1 kHz beep after a voicemail
greeting (some boxes have none), and a long silence at the end: SIPp stops sending RTP when
the file ends, and a node that receives no frames cannot tell silence from a dead line.

    python -m tests.far_ends DIR [--humans N] [--machines N] [--seed S]

writes DIR/human-NN.ulaw, DIR/machine-NN.ulaw and DIR/manifest.json (what each file holds).
The same seed gives the same greetings, so runs repeat.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

SAMPLE_RATE = 8000
TRAILING_SILENCE_S = 60.0
BEEP_HZ = 1000
DEFAULT_SEED = 17

VOICES = (
    "en-us",
    "en-gb",
    "en",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-us+f3",
    "en-gb+f2",
    "en-us+m3",
    "en+f4",
)
HUMAN_LINES = (
    "Hello?",
    "Yes?",
    "Hello, this is Maria.",
    "Hi.",
    "Hello?",
    "Yeah?",
    "Hello, Tom speaking.",
    "Hi, who's this?",
    "Good morning.",
    "Hello, yes?",
)
NAMES = ("John Baker", "Priya", "the Hernandez family", "Dr. Alice Chen", "Marcus", "Sarah and Tim")
OPENINGS = (
    "Hi, you've reached {name}.",
    "Hello, this is {name}.",
    "You have reached the voicemail of {name}.",
    "Thank you for calling {name}.",
    "The person you are calling, {name}, is not available.",
)
MIDDLES = (
    "I can't come to the phone right now.",
    "I'm either on another call or away from my desk.",
    "Sorry I missed your call.",
    "We are closed at the moment; our office hours are Monday to Friday, nine to five.",
    "I'm travelling this week with limited access to my phone.",
    "If this is urgent, please call my mobile instead.",
)
ENDINGS = (
    "Please leave your name, number and a short message after the tone.",
    "Leave a message after the beep and I'll get back to you as soon as I can.",
    "Please leave a message and we will return your call within one business day.",
    "At the tone, please record your message. When you are finished, simply hang up.",
)


class Kind(StrEnum):
    HUMAN = "human"
    MACHINE = "machine"


@dataclass(frozen=True)
class Greeting:
    """One far end's words and how they are spoken and framed."""

    kind: Kind
    text: str
    voice: str
    speed_wpm: int
    pitch: int
    silence_before_s: float
    beep_s: float | None
    """Length of the 1 kHz beep after the words (None: no beep, silence only)."""
    gap_before_beep_s: float


@dataclass(frozen=True)
class RenderedGreeting:
    greeting: Greeting
    path: Path
    speech_s: float
    """Seconds of speech (espeak's output, before any padding)."""
    speech_end_s: float
    """Seconds from the start of the stream to the end of the words."""
    beep_at_s: float | None
    """Seconds from the start of the stream to the beep's start (None: no beep)."""


def human_greeting(rng: random.Random) -> Greeting:
    return Greeting(
        kind=Kind.HUMAN,
        text=rng.choice(HUMAN_LINES),
        voice=rng.choice(VOICES),
        speed_wpm=rng.randint(140, 200),
        pitch=rng.randint(30, 70),
        silence_before_s=round(rng.uniform(0.1, 0.9), 2),
        beep_s=None,
        gap_before_beep_s=0.0,
    )


def machine_greeting(rng: random.Random, *, with_beep: bool) -> Greeting:
    """A 5-20 s voicemail greeting: an opening, one to three middles, an ending."""
    speed = rng.randint(140, 200)
    target_s = rng.uniform(5.0, 20.0)
    sentences = [rng.choice(OPENINGS).format(name=rng.choice(NAMES))]
    middles = list(MIDDLES)
    rng.shuffle(middles)
    ending = rng.choice(ENDINGS)
    # espeak speaks about speed_wpm words a minute: add middles until the estimate reaches target
    while middles and _estimate_s([*sentences, ending], speed) < target_s:
        sentences.append(middles.pop())
    return Greeting(
        kind=Kind.MACHINE,
        text=" ".join([*sentences, ending]),
        voice=rng.choice(VOICES),
        speed_wpm=speed,
        pitch=rng.randint(30, 70),
        silence_before_s=round(rng.uniform(0.1, 0.9), 2),
        beep_s=round(rng.uniform(0.4, 0.8), 2) if with_beep else None,
        gap_before_beep_s=round(rng.uniform(0.2, 0.8), 2),
    )


def _estimate_s(sentences: list[str], speed_wpm: int) -> float:
    words = sum(len(s.split()) for s in sentences)
    return words * 60.0 / speed_wpm + 0.3 * len(sentences)


def greetings(humans: int, machines: int, seed: int = DEFAULT_SEED) -> list[Greeting]:
    """`humans` people and `machines` voicemail boxes, a quarter of the boxes without a beep."""
    rng = random.Random(seed)
    made = [human_greeting(rng) for _ in range(humans)]
    made += [machine_greeting(rng, with_beep=i % 4 != 3) for i in range(machines)]
    return made


def _run(args: list[str]) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout


def render(greeting: Greeting, path: Path) -> RenderedGreeting:
    """Write `greeting` to `path` as raw 8 kHz mono µ-law, ready for SIPp's rtp_stream."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian packages espeak-ng, sox)")
    with tempfile.TemporaryDirectory(prefix="far-end-") as tmp:
        spoken, speech, beep = Path(tmp, "spoken.wav"), Path(tmp, "speech.wav"), Path(tmp, "beep.wav")
        _run(
            ["espeak-ng", "-v", greeting.voice, "-s", str(greeting.speed_wpm), "-p", str(greeting.pitch)]
            + ["-w", str(spoken), "--", greeting.text]
        )
        after_words = greeting.gap_before_beep_s if greeting.beep_s is not None else 0.0
        _run(
            ["sox", str(spoken), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(speech)]
            + ["pad", str(greeting.silence_before_s), str(after_words)]
        )
        speech_s = float(_run(["soxi", "-D", str(spoken)]).strip())
        parts = [str(speech)]
        if greeting.beep_s is not None:
            _run(
                ["sox", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(beep)]
                + ["synth", str(greeting.beep_s), "sine", str(BEEP_HZ), "vol", "0.5"]
            )
            parts.append(str(beep))
        # sox joins its inputs in order, then pads the whole with the trailing silence
        _run(
            [
                "sox",
                *parts,
                "-t",
                "ul",
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                str(path),
                "pad",
                "0",
                str(TRAILING_SILENCE_S),
            ]
        )
    speech_end = greeting.silence_before_s + speech_s
    beep_at = speech_end + greeting.gap_before_beep_s if greeting.beep_s is not None else None
    return RenderedGreeting(greeting, path, speech_s, speech_end, beep_at)


def render_all(
    directory: Path, humans: int, machines: int, seed: int = DEFAULT_SEED
) -> list[RenderedGreeting]:
    """Render every greeting into `directory` (human-NN.ulaw, machine-NN.ulaw) and describe
    them in directory/manifest.json."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered: list[RenderedGreeting] = []
    counts = {Kind.HUMAN: 0, Kind.MACHINE: 0}
    for greeting in greetings(humans, machines, seed):
        counts[greeting.kind] += 1
        rendered.append(render(greeting, directory / f"{greeting.kind}-{counts[greeting.kind]:02d}.ulaw"))
    manifest = [
        {**asdict(r.greeting), "path": str(r.path), "speech_s": r.speech_s, "beep_at_s": r.beep_at_s}
        for r in rendered
    ]
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return rendered


def write_far_end(directory: Path, kind: Kind, seed: int = DEFAULT_SEED) -> RenderedGreeting:
    """The one file a carrier started with scenario `human` or `voicemail` streams, in the
    directory SIPp runs in (scripts/carrier.sh: SESPCL_CARRIER_AUDIO_DIR): human.ulaw, a short
    "Hello?"-like answer; voicemail.ulaw, a greeting with a beep."""
    rng = random.Random(seed)
    greeting = human_greeting(rng) if kind is Kind.HUMAN else machine_greeting(rng, with_beep=True)
    directory.mkdir(parents=True, exist_ok=True)
    name = "human.ulaw" if kind is Kind.HUMAN else "voicemail.ulaw"
    return render(greeting, directory / name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--humans", type=int, default=20)
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    for r in render_all(args.directory, args.humans, args.machines, args.seed):
        print(
            f"{r.path.name}: {r.greeting.kind} {r.speech_s:.1f} s, beep at {r.beep_at_s}: {r.greeting.text}"
        )


if __name__ == "__main__":
    main()
