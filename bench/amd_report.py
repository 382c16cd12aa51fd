"""bench/amd.py's figures: the confusion matrix of AMD verdicts and their timing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestrator.domain.interaction import AnsweredBy, answered_by
from tests.far_ends import Kind, RenderedGreeting

NO_VERDICT = "no verdict"
COLUMNS = [a.value for a in AnsweredBy] + [NO_VERDICT]
TARGET = 0.90


@dataclass(frozen=True)
class Outcome:
    greeting: RenderedGreeting
    answered_at: float | None
    """monotonic time the node said the channel was Up"""
    verdict: dict[str, str] | None
    """the SespclMachine event's Status, Cause and End"""
    verdict_at: float | None
    ended_at: float | None = None
    """monotonic time of the channel's Hangup"""

    @property
    def label(self) -> str:
        if self.verdict is None:
            return NO_VERDICT
        return answered_by(self.verdict["Status"], self.verdict["End"] or None).value

    @property
    def truth(self) -> Kind:
        return self.greeting.greeting.kind

    def after_answer_s(self) -> float | None:
        if self.answered_at is None or self.verdict_at is None:
            return None
        return self.verdict_at - self.answered_at

    def after_greeting_end_s(self) -> float | None:
        """From the beep's start (or, with no beep, the last word's end) to the verdict: when the
        message would start playing."""
        since_answer = self.after_answer_s()
        if since_answer is None:
            return None
        rendered = self.greeting
        end = rendered.beep_at_s if rendered.beep_at_s is not None else rendered.speech_end_s
        return since_answer - end


def call_seconds(outcomes: list[Outcome]) -> float:
    """Seconds the answered calls were up, all together."""
    return sum(o.ended_at - o.answered_at for o in outcomes if o.ended_at and o.answered_at)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _timing(label: str, values: list[float]) -> str:
    return (
        f"{label}: n={len(values)} p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s"
    )


def print_report(outcomes: list[Outcome]) -> None:
    width = max(len(c) for c in COLUMNS)
    print("\nconfusion matrix (rows: truth; columns: answered_by)")
    print(f"{'':>8} " + " ".join(f"{c:>{width}}" for c in COLUMNS))
    for kind in Kind:
        counts = Counter(o.label for o in outcomes if o.truth is kind)
        print(f"{kind.value:>8} " + " ".join(f"{counts[c]:>{width}}" for c in COLUMNS))
    for kind in Kind:
        mine = [o for o in outcomes if o.truth is kind]
        right = sum(1 for o in mine if _right(o))
        share = right / len(mine) if mine else float("nan")
        verdict = "meets" if share >= TARGET else "MISSES"
        print(f"{kind.value} right: {right}/{len(mine)} = {share:.1%} ({verdict} the {TARGET:.0%} target)")
    for kind in Kind:
        times = [t for o in outcomes if o.truth is kind and (t := o.after_answer_s()) is not None]
        print(_timing(f"answer → verdict, {kind.value}s", times))
    machines = [o for o in outcomes if o.truth is Kind.MACHINE and o.label.startswith("machine_end")]
    beeps = [o for o in machines if o.greeting.beep_at_s is not None]
    silent = [o for o in machines if o.greeting.beep_at_s is None]
    print(
        f"machines with a beep: {Counter(o.label for o in beeps).most_common()}; "
        f"without: {Counter(o.label for o in silent).most_common()}"
    )
    print(
        _timing(
            "beep start → message start", [t for o in beeps if (t := o.after_greeting_end_s()) is not None]
        )
    )
    print(
        _timing(
            "no beep, last word → message start",
            [t for o in silent if (t := o.after_greeting_end_s()) is not None],
        )
    )
    for kind in Kind:
        causes = Counter(o.verdict["Cause"].split("-")[0] for o in outcomes if o.truth is kind and o.verdict)
        print(f"AMD causes, {kind.value}s: {causes.most_common()}")
    wrong = [o for o in outcomes if not _right(o)]
    for o in wrong:
        g = o.greeting.greeting
        print(
            f"  wrong: {o.greeting.path.name} ({g.voice}, {g.speed_wpm} wpm, {o.greeting.speech_s:.1f} s) "
            f"→ {o.label} {o.verdict}: {g.text[:60]!r}"
        )


def _right(outcome: Outcome) -> bool:
    if outcome.truth is Kind.HUMAN:
        return outcome.label == AnsweredBy.HUMAN.value
    return outcome.label.startswith("machine_")
