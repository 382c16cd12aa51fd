"""When a supervised process is stuck: the watchdog's verdicts, from signs of life and a clock. Pure.

A process is judged on its own sign of life (the API answering `/health/live` from its event
loop, a heartbeat file the dispatcher and workers touch, a node's AMI banner), never on what it
depends on: a dispatcher waiting for PostgreSQL is alive. A process just started gets the same
grace as one that went silent, so one starting up is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    ALIVE = "alive"
    STARTING = "starting"
    """No sign of life yet from this start, still inside the grace period."""
    STUCK = "stuck"
    """No sign of life for the whole grace period: stop it (TERM, then KILL), start it again."""


@dataclass
class LivenessJudge:
    """The last sign of life of each process, per start: a restarted process (another start
    time) begins with a clean record, and a sign older than the start (a heartbeat file left by
    the process before) does not count."""

    fail_after_s: float
    _last_sign: dict[str, tuple[float, float | None]] = field(default_factory=dict)

    def judge(self, name: str, started_at: float, sign_at: float | None, now: float) -> Verdict:
        """`sign_at`: when the process last showed life as far as this look tells (now, for a
        probe it answered; a heartbeat's time), or None."""
        start, last = self._last_sign.get(name, (started_at, None))
        if start != started_at:
            last = None
        if sign_at is not None and sign_at >= started_at and (last is None or sign_at > last):
            last = sign_at
        self._last_sign[name] = (started_at, last)
        silent_since = started_at if last is None else last
        if now - silent_since >= self.fail_after_s:
            return Verdict.STUCK
        return Verdict.STARTING if last is None else Verdict.ALIVE

    def forget(self, name: str) -> None:
        self._last_sign.pop(name, None)
