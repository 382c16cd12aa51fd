"""The processes of `make bench-farm`, started by the bench itself (not the stack, not
supervisord): the simulated nodes, the API, workers, upkeep and the dispatchers, each a child
with the bench's own environment (its database, its Redis database, its API port), its output in
a log file of the run; and what each one spent of the CPU (/proc/<pid>/stat)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.dispatch import CpuMeter, _pg_backends

REPO = Path(__file__).resolve().parents[1]
STOP_WAIT_S = 20.0
SERVER = "pg:server*"
"""PostgreSQL's own processes, shared with the other databases of the server."""


@dataclass(frozen=True)
class FarmEnv:
    database_url: str
    redis_url: str
    api_port: int
    audio_dir: Path
    logs: Path
    settings: Mapping[str, str]
    """SESPCL_* settings every orchestrator process gets (the dispatch caps the bench lifts)."""
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ami_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    ami_admin_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def variables(self) -> dict[str, str]:
        """The environment of every child: this one's PATH and nothing of the stack's settings."""
        kept = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SESPCL_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        return kept | {
            "PYTHONPATH": str(REPO),
            "LANG": "C.UTF-8",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SESPCL_API_HOST": "127.0.0.1",
            "SESPCL_API_PORT": str(self.api_port),
            "SESPCL_API_URL": self.api_url,
            "SESPCL_API_KEY": self.api_key,
            "SESPCL_AMI_SECRET": self.ami_secret,
            "SESPCL_AMI_ADMIN_SECRET": self.ami_admin_secret,
            "SESPCL_AUDIO_DIR": str(self.audio_dir),
            "SESPCL_LOG_JSON": "true",
            **self.settings,
        }


class Processes:
    """Children by role ("api", "dispatcher", "worker", "upkeep", "nodes"), stopped by their own
    pid: TERM, then KILL after STOP_WAIT_S."""

    def __init__(self, env: FarmEnv) -> None:
        self._env = env
        self.running: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.logs: dict[int, Path] = {}
        """Each child's log, by pid."""
        self._started: dict[str, int] = {}

    def start(self, role: str, *args: str, module: str = "orchestrator") -> subprocess.Popen[bytes]:
        self._started[role] = count = self._started.get(role, 0) + 1
        path = self._env.logs / f"{role}-{count}.log"
        log = open(path, "ab")  # noqa: SIM115 - the child's, for its life
        child = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=self._env.variables(), stdout=log, stderr=log, cwd=REPO
        )
        log.close()
        self.logs[child.pid] = path
        self.running.setdefault(role, []).append(child)
        return child

    def run(self, *args: str) -> str:
        """A `sespcl` command to its end (nodes add, trunks add, db migrate); its output."""
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env=self._env.variables(),
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if done.returncode != 0:
            raise SystemExit(f"sespcl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def pids(self, role: str) -> list[int]:
        return [child.pid for child in self.running.get(role, []) if child.poll() is None]

    def stop(self, role: str) -> None:
        children = self.running.pop(role, [])
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def stop_all(self) -> None:
        for role in ["dispatcher", "api", "worker", "upkeep", "nodes", *self.running]:
            self.stop(role)


def wait_ready(child: subprocess.Popen[bytes], log: Path, word: str, timeout_s: float = 20.0) -> None:
    """Until `word` is in the child's log (the fake nodes print "ready"), or it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"{log.name} exited: {log.read_text()[-2000:]}")
        if log.exists() and word in log.read_text():
            return
        time.sleep(0.1)
    raise SystemExit(f"{log.name}: not ready within {timeout_s:g} s")


class CpuSample(CpuMeter):
    """CPU seconds by part between `start()` and `stop()` (bench/dispatch.py's meter): each
    process role (each dispatcher apart), PostgreSQL's sessions of the bench's database by
    application_name (each orchestrator process names its sessions), and the server's own
    processes."""

    def __init__(self, processes: Processes, db: psycopg.Connection) -> None:
        super().__init__(db, asterisk_pid=0)
        self._processes = processes
        self._db = db

    def _groups(self) -> dict[str, list[int]]:
        groups = {role: self._processes.pids(role) for role in ("api", "worker", "upkeep", "nodes")}
        for n, pid in enumerate(self._processes.pids("dispatcher"), start=1):
            groups[f"dispatcher-{n}"] = [pid]
        sessions = _pg_backends(self._db)
        groups |= {f"pg:{name.removeprefix('sespcl-')}": pids for name, pids in sessions.items()}
        # The server's own processes (WAL writer, checkpointer...): shared with every database.
        rows = self._db.execute("SELECT pid FROM pg_stat_activity WHERE datname IS NULL").fetchall()
        self._db.commit()
        return groups | {SERVER: [int(pid) for (pid,) in rows]}
