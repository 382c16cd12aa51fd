"""supervisord over its XML-RPC socket: what runs, and stopping or starting one process.

Calls block, so each runs in a thread of its own."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

from supervisor.xmlrpc import SupervisorTransport


class SupervisorUnavailable(Exception):
    """supervisord did not answer, or refused the request."""


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    """`group:name`, as supervisorctl spells it."""
    state: str
    started_at: float
    pid: int


class Supervisor:
    def __init__(self, socket_path: str) -> None:
        self._url = f"unix://{socket_path}"

    def _call(self, method: str, *args: Any) -> Any:
        transport = SupervisorTransport(None, None, self._url)
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        try:
            return getattr(proxy.supervisor, method)(*args)
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError) as exc:
            raise SupervisorUnavailable(f"supervisord {method}: {exc}") from exc

    async def processes(self) -> list[ProcessInfo]:
        rows = await asyncio.to_thread(self._call, "getAllProcessInfo")
        return [
            ProcessInfo(f"{r['group']}:{r['name']}", str(r["statename"]), float(r["start"]), int(r["pid"]))
            for r in rows
        ]

    async def signal(self, name: str, signal: str) -> None:
        """Send `signal` (TERM, KILL, CONT…) to the process; supervisord restarts it when it exits."""
        try:
            await asyncio.to_thread(self._call, "signalProcess", name, signal)
        except SupervisorUnavailable as exc:
            if "NOT_RUNNING" not in str(exc):
                raise

    async def start(self, name: str) -> None:
        try:
            await asyncio.to_thread(self._call, "startProcess", name, False)
        except SupervisorUnavailable as exc:
            if "ALREADY_STARTED" not in str(exc):
                raise
