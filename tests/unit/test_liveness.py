"""The watchdog's verdicts and actions, with a fake supervisord and a clock of our own."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.domain.liveness import LivenessJudge, Verdict
from orchestrator.services.watchdog import Watchdog
from orchestrator.supervision.probes import Check
from orchestrator.supervision.supervisor_rpc import ProcessInfo, SupervisorUnavailable


def test_a_process_that_shows_life_is_alive_and_one_silent_for_the_grace_is_stuck() -> None:
    judge = LivenessJudge(fail_after_s=15)
    assert judge.judge("api:api", started_at=100, sign_at=101, now=101) is Verdict.ALIVE
    assert judge.judge("api:api", started_at=100, sign_at=None, now=115.9) is Verdict.ALIVE
    assert judge.judge("api:api", started_at=100, sign_at=None, now=116) is Verdict.STUCK


def test_a_starting_process_gets_the_grace_from_its_start() -> None:
    judge = LivenessJudge(fail_after_s=15)
    assert judge.judge("d:d", started_at=100, sign_at=None, now=110) is Verdict.STARTING
    assert judge.judge("d:d", started_at=100, sign_at=None, now=115) is Verdict.STUCK


def test_a_heartbeat_left_by_the_process_before_does_not_count() -> None:
    judge = LivenessJudge(fail_after_s=15)
    assert judge.judge("w:w-1", started_at=200, sign_at=150, now=205) is Verdict.STARTING
    assert judge.judge("w:w-1", started_at=200, sign_at=150, now=215) is Verdict.STUCK
    assert judge.judge("w:w-1", started_at=200, sign_at=214, now=215) is Verdict.ALIVE


def test_a_restarted_process_starts_with_a_clean_record() -> None:
    judge = LivenessJudge(fail_after_s=15)
    assert judge.judge("n:n", started_at=100, sign_at=150, now=150) is Verdict.ALIVE
    # a new start after a kill: its last sign is not the old process's
    assert judge.judge("n:n", started_at=160, sign_at=None, now=170) is Verdict.STARTING
    assert judge.judge("n:n", started_at=160, sign_at=None, now=175) is Verdict.STUCK


@pytest.mark.parametrize(
    ("spec", "process", "kind", "target"),
    [
        ("api=http://127.0.0.1:5000/health/live", "api:api", "http", "http://127.0.0.1:5000/health/live"),
        ("worker:worker-2=file:/run/w2.beat", "worker:worker-2", "file", "/run/w2.beat"),
        ("node-n1=ami:127.0.10.1:5038", "node-n1:node-n1", "ami", "127.0.10.1:5038"),
    ],
)
def test_checks_are_read_from_their_spec(spec: str, process: str, kind: str, target: str) -> None:
    assert Check.parse(spec) == Check(process, kind, target)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    ["api", "=http://x/", "api=ftp://x", "n=ami:host", "n=ami:host:99999", "n=file:relative", "a=http://"],
)
def test_a_bad_check_is_refused_naming_it(spec: str) -> None:
    with pytest.raises(ValueError, match="expected|no host"):
        Check.parse(spec)


class FakeSupervisor:
    """A process exits on KILL, and on TERM if it still handles signals (`obeys_term`); then
    supervisord starts it again (a new pid and start time)."""

    def __init__(self, processes: list[ProcessInfo], *, obeys_term: bool = True) -> None:
        self.table = {p.name: p for p in processes}
        self.signals: list[tuple[str, str]] = []
        self.started: list[str] = []
        self.fail_signals = False
        self.obeys_term = obeys_term

    @property
    def restarted(self) -> list[str]:
        return [name for name, sig in self.signals if sig == "KILL" or (sig == "TERM" and self.obeys_term)]

    async def processes(self) -> list[ProcessInfo]:
        return list(self.table.values())

    async def signal(self, name: str, sig: str) -> None:
        if self.fail_signals:
            raise SupervisorUnavailable("supervisord signalProcess: refused")
        self.signals.append((name, sig))
        if sig == "KILL" or (sig == "TERM" and self.obeys_term):
            old = self.table[name]
            self.table[name] = ProcessInfo(name, "RUNNING", old.started_at + 100, old.pid + 1)

    async def start(self, name: str) -> None:
        self.started.append(name)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _settle(dog: Watchdog) -> None:
    while dog._tasks:
        await asyncio.gather(*dog._tasks)


async def test_the_watchdog_restarts_only_the_process_silent_past_the_grace() -> None:
    supervisor = FakeSupervisor(
        [
            ProcessInfo("api:api", "RUNNING", 1000, 11),
            ProcessInfo("dispatcher:dispatcher", "RUNNING", 1000, 12),
        ]
    )
    clock = Clock(1000)
    checks = [
        Check.parse("api=http://127.0.0.1:5000/health/live"),
        Check.parse("dispatcher=file:/tmp/d.beat"),
    ]
    dog = Watchdog(supervisor, checks, fail_after_s=15, clock=clock)  # type: ignore[arg-type]
    beats = {"api:api": True, "dispatcher:dispatcher": True}

    async def look(check: Check) -> float | None:
        return clock.now if beats[check.process] else None

    for _ in range(5):
        clock.now += 1
        await dog.step(look)
    beats["api:api"] = False  # its loop stops answering at 1005
    for _ in range(14):
        clock.now += 1
        await dog.step(look)
    await _settle(dog)
    assert supervisor.restarted == [], "14 s silent is inside the grace"
    clock.now += 1
    await dog.step(look)
    await _settle(dog)
    assert supervisor.restarted == ["api:api"]
    # the new process gets its own grace: not restarted again at once
    clock.now += 1
    await dog.step(look)
    await _settle(dog)
    assert supervisor.restarted == ["api:api"]


async def test_a_process_deaf_to_term_is_killed_after_the_grace() -> None:
    supervisor = FakeSupervisor([ProcessInfo("dispatcher:dispatcher", "RUNNING", 0, 9)], obeys_term=False)
    clock = Clock(100)
    checks = [Check.parse("dispatcher=file:/tmp/d.beat")]
    dog = Watchdog(supervisor, checks, fail_after_s=15, term_grace_s=0, clock=clock)  # type: ignore[arg-type]

    async def look(check: Check) -> float | None:
        return None

    await dog.step(look)
    await _settle(dog)
    assert supervisor.signals == [
        ("dispatcher:dispatcher", "TERM"),
        ("dispatcher:dispatcher", "CONT"),
        ("dispatcher:dispatcher", "KILL"),
    ]


async def test_a_program_given_up_after_a_crash_loop_is_started_again_later() -> None:
    supervisor = FakeSupervisor([ProcessInfo("worker:worker-1", "FATAL", 0, 0)])
    clock = Clock(5000)
    dog = Watchdog(supervisor, [], fail_after_s=15, fatal_retry_s=60, clock=clock)  # type: ignore[arg-type]

    async def look(check: Check) -> float | None:
        return None

    await dog.step(look)
    clock.now += 59
    await dog.step(look)
    await _settle(dog)
    assert supervisor.started == []
    clock.now += 1
    await dog.step(look)
    await _settle(dog)
    assert supervisor.started == ["worker:worker-1"]


async def test_a_failed_restart_is_logged_and_tried_again_on_the_next_look() -> None:
    supervisor = FakeSupervisor([ProcessInfo("api:api", "RUNNING", 0, 7)])
    supervisor.fail_signals = True
    clock = Clock(100)
    dog = Watchdog(supervisor, [Check.parse("api=http://h:1/x")], fail_after_s=15, clock=clock)  # type: ignore[arg-type]

    async def look(check: Check) -> float | None:
        return None

    await dog.step(look)
    await _settle(dog)
    supervisor.fail_signals = False
    clock.now += 1
    await dog.step(look)
    await _settle(dog)
    assert supervisor.restarted == ["api:api"]


def test_sespcl_alive_reads_the_heartbeat_file(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time
    from pathlib import Path

    from click.testing import CliRunner

    from orchestrator.cli import main
    from orchestrator.config import get_settings
    from orchestrator.supervision.heartbeat import beat

    beat_file = Path(str(tmp_path)) / "run" / "worker.beat"
    monkeypatch.setenv("SESPCL_HEARTBEAT_FILE", str(beat_file))
    monkeypatch.setenv("SESPCL_LIVENESS_FAIL_AFTER_S", "15")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        missing = runner.invoke(main, ["alive"])
        assert missing.exit_code == 1 and "no heartbeat yet" in missing.output
        beat(beat_file)
        assert runner.invoke(main, ["alive"]).exit_code == 0
        stale = time.time() - 16
        os.utime(beat_file, (stale, stale))
        old = runner.invoke(main, ["alive"])
        assert old.exit_code == 1 and "16 s old" in old.output
    finally:
        get_settings.cache_clear()
