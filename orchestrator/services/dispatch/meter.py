"""What the dispatcher measures as calls go, behind a port: the Prometheus adapter lives in
orchestrator/observability; tests and tools that export nothing use `NoMeter`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class NodeView:
    """One node as this dispatcher sees it now."""

    name: str
    up: bool
    live_channels: int
    pace_cps: float


class DispatchMeter(Protocol):
    def originate_acknowledged(self, node: str, seconds: float) -> None:
        """An Originate's first sign from its node (its channel exists): the pacer's signal."""

    def answered(self, trunk: str, seconds: float) -> None:
        """An attempt answered, `seconds` after its Originate left."""

    def attempt_ended(self, trunk: str, node: str, outcome: str, talk_s: float | None) -> None:
        """An attempt's final status (`outcome`), and how long it talked if it was answered."""

    def call_finished(self, trunk: str, status: str) -> None:
        """A call reached its final status (stored: a retry is not a finish)."""

    def digits(self, digits: str) -> None:
        """Digits the far end pressed."""

    def answered_by(self, verdict: str) -> None:
        """The machine detection's verdict."""


class NoMeter:
    """Measures nothing."""

    def originate_acknowledged(self, node: str, seconds: float) -> None:
        pass

    def answered(self, trunk: str, seconds: float) -> None:
        pass

    def attempt_ended(self, trunk: str, node: str, outcome: str, talk_s: float | None) -> None:
        pass

    def call_finished(self, trunk: str, status: str) -> None:
        pass

    def digits(self, digits: str) -> None:
        pass

    def answered_by(self, verdict: str) -> None:
        pass
