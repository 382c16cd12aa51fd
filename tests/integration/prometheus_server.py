"""A real Prometheus (Debian's `prometheus`) on the stack's own .stack/prometheus.yml, with a
throwaway database, for the tests that read what it scraped."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    async def query(self, client: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
        response = await client.get(f"{self.url}/api/v1/query", params={"query": promql})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def value(self, client: httpx.AsyncClient, promql: str) -> float | None:
        """A query's single value (None: no series)."""
        result = await self.query(client, promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    async def wait_for(
        self,
        client: httpx.AsyncClient,
        promql: str,
        ready: Callable[[list[dict[str, Any]]], bool],
        timeout: float,
    ) -> list[dict[str, Any]]:
        """Run `promql` until its result is `ready`; fail, showing the last result, after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = await self.query(client, promql)
            if ready(result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"{promql!r} not ready after {timeout} s: {result}")
            await asyncio.sleep(0.5)


@contextmanager
def running_prometheus(config: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: scripts/install-deps.sh installs Debian's package")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="sespcl-prometheus-") as storage:
        log = Path(storage) / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={storage}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, process, log)
            yield Prometheus(url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"prometheus not ready after {timeout} s: {log.read_text()[-2000:]}")
