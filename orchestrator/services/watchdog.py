"""The watchdog: restarts a supervised process whose liveness has failed for the grace period.

supervisord restarts a process that exits; one that is stuck (a loop that never yields, a
SIGSTOP, a deadlock) keeps running and serves nothing. Every second the watchdog looks for each
process's sign of life; a process silent for `fail_after_s` gets TERM (and CONT, should it be
stopped), then KILL if it is still there `term_grace_s` later, and supervisord starts it again
as it does any process that exits. A program supervisord gave up on after a crash loop (FATAL)
is started again after `fatal_retry_s`, so a dependency down for a while does not leave it down
for good.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import structlog

from orchestrator.domain.liveness import LivenessJudge, Verdict
from orchestrator.services.periodic import every
from orchestrator.supervision.probes import Check, sign_of_life
from orchestrator.supervision.supervisor_rpc import ProcessInfo, Supervisor, SupervisorUnavailable

log = structlog.get_logger(__name__)

SignOfLife = Callable[[Check], Awaitable[float | None]]


class Watchdog:
    def __init__(
        self,
        supervisor: Supervisor,
        checks: list[Check],
        *,
        fail_after_s: float,
        fatal_retry_s: float = 60.0,
        term_grace_s: float = 3.0,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._supervisor = supervisor
        self._checks = {c.process: c for c in checks}
        self._judge = LivenessJudge(fail_after_s)
        self._fatal_retry_s = fatal_retry_s
        self._term_grace_s = term_grace_s
        self._interval_s = interval_s
        self._clock = clock
        self._fatal_since: dict[str, float] = {}
        self._restarting: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            probe_timeout = min(2.0, self._interval_s * 2)

            async def look(check: Check) -> float | None:
                return await sign_of_life(check, session, probe_timeout)

            await every(
                self._interval_s, lambda: self.step(look), self._stopping, failure_event="watchdog.failed"
            )

    async def step(self, look: SignOfLife) -> None:
        processes = await self._supervisor.processes()
        running = [p for p in processes if p.state == "RUNNING" and p.name in self._checks]
        signs = await asyncio.gather(*(look(self._checks[p.name]) for p in running))
        now = self._clock()
        for process, sign in zip(running, signs):
            if process.name in self._restarting:
                continue
            if self._judge.judge(process.name, process.started_at, sign, now) is Verdict.STUCK:
                self._spawn(self._restart(process, now))
        self._retry_fatal(processes, now)

    def _retry_fatal(self, processes: list[ProcessInfo], now: float) -> None:
        fatal = {p.name for p in processes if p.state == "FATAL"}
        for name in set(self._fatal_since) - fatal:
            del self._fatal_since[name]
        for name in fatal:
            since = self._fatal_since.setdefault(name, now)
            if now - since >= self._fatal_retry_s and name not in self._restarting:
                del self._fatal_since[name]
                log.warning("watchdog.fatal_retry", process=name, after_s=self._fatal_retry_s)
                self._spawn(self._start(name))

    async def _restart(self, process: ProcessInfo, now: float) -> None:
        log.error(
            "watchdog.stuck",
            process=process.name,
            pid=process.pid,
            check=self._checks[process.name].target,
            silent_s=self._judge.fail_after_s,
        )
        self._restarting.add(process.name)
        try:
            await self._supervisor.signal(process.name, "TERM")
            await self._supervisor.signal(process.name, "CONT")  # a stopped process acts on TERM
            if not await self._gone(process, self._term_grace_s):
                log.error("watchdog.kill", process=process.name, pid=process.pid, after_s=self._term_grace_s)
                await self._supervisor.signal(process.name, "KILL")
            log.warning("watchdog.restarted", process=process.name, took_s=round(self._clock() - now, 1))
        except SupervisorUnavailable as exc:
            log.error("watchdog.restart_failed", process=process.name, error=str(exc))
        finally:
            self._restarting.discard(process.name)
            self._judge.forget(process.name)

    async def _gone(self, process: ProcessInfo, within_s: float) -> bool:
        """Has this process (its pid) exited within `within_s`?"""
        deadline = self._clock() + within_s
        while True:
            current = {p.name: p for p in await self._supervisor.processes()}.get(process.name)
            if current is None or current.pid != process.pid or current.state != "RUNNING":
                return True
            if self._clock() >= deadline:
                return False
            await asyncio.sleep(0.2)

    async def _start(self, name: str) -> None:
        self._restarting.add(name)
        try:
            await self._supervisor.start(name)
        except SupervisorUnavailable as exc:
            log.error("watchdog.start_failed", process=name, error=str(exc))
        finally:
            self._restarting.discard(name)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
