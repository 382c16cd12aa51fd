"""A Redis that requires a password (as compose runs it): the services authenticate with the
password in REDIS_URL, and say so in one line when it is missing or wrong."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.cli import sespcl

PASSWORD = "r3dis-Secret-for-the-test-only"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port, password=PASSWORD).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the test's Redis did not start"
            time.sleep(0.05)
    yield port
    server.terminate()
    server.wait(10)


def _worker(url: str) -> subprocess.CompletedProcess[str]:
    return sespcl("worker", "--burst", REDIS_URL=url, SESPCL_LOG_JSON="true")


def test_a_worker_with_the_password_works(guarded_redis: int) -> None:
    result = _worker(f"redis://:{PASSWORD}@127.0.0.1:{guarded_redis}/0")
    assert result.returncode == 0, result.stderr
    assert redis.Redis(port=guarded_redis, password=PASSWORD).ping()


@pytest.mark.parametrize("credentials", ["", ":wrong-password@"], ids=["none", "wrong"])
def test_a_worker_without_the_right_password_stops_with_one_line(
    guarded_redis: int, credentials: str
) -> None:
    result = _worker(f"redis://{credentials}127.0.0.1:{guarded_redis}/0")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Redis" in errors[0] and "password" in errors[0].lower() + "credentials", (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr and os.environ.get("SESPCL_API_KEY", "-") not in result.stderr
