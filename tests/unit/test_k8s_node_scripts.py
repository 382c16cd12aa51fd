"""The Asterisk pod's scripts (deploy/k8s/node/), run for real with stand-ins for `sespcl` and
`asterisk` on PATH: each pod's RTP range from its ordinal; the registrar joins the farm with real
`sespcl nodes` commands and drains the node; Asterisk's preStop waits for the drain, then for
the node's last call."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.unit.k8s_manifests import NODE_SCRIPTS, check_sespcl_command

POD = "asterisk-3"
POD_IP = "203.0.113.7"


def _stand_in(bin_dir: Path, name: str, body: str) -> Path:
    """An executable `name` on a PATH of its own that logs its arguments, then runs `body`."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.log"
    script = bin_dir / name
    script.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >>"{log}"\n{body}\n')
    script.chmod(0o755)
    return log


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The pod's environment, as the downward API gives it, with the stand-ins first on PATH."""
    path = f"{bin_dir}:{os.environ['PATH']}"
    return {"PATH": path, "SESPCL_NODE_NAME": POD, "SESPCL_NODE_ADDRESS": POD_IP, **extra}


def _rtp_range(name: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """start-asterisk.sh with `printenv` as the entrypoint: the range it would start Asterisk with."""
    return subprocess.run(
        ["bash", str(NODE_SCRIPTS / "start-asterisk.sh"), "printenv", "SESPCL_RTP_START", "SESPCL_RTP_END"],
        env={"PATH": os.environ["PATH"], "SESPCL_NODE_NAME": name, **settings},
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_each_pod_takes_the_rtp_range_of_its_ordinal_and_no_two_overlap() -> None:
    ranges = []
    for ordinal in range(11):
        done = _rtp_range(f"asterisk-{ordinal}")
        assert done.returncode == 0, done.stderr
        start, end = (int(port) for port in done.stdout.split())
        ranges.append((start, end))
    assert ranges[:2] == [(10000, 14999), (15000, 19999)]
    assert ranges[-1] == (60000, 64999)
    assert all(previous[1] < following[0] for previous, following in zip(ranges, ranges[1:]))


def test_a_pod_whose_range_would_pass_the_last_port_refuses_to_start() -> None:
    refused = _rtp_range("asterisk-11")
    assert refused.returncode == 1 and "passes 65535" in refused.stderr
    # A narrower span makes room for more nodes.
    narrower = _rtp_range("asterisk-21", SESPCL_RTP_SPAN="2500")
    assert narrower.stdout.split() == ["62500", "64999"]
    assert _rtp_range("asterisk").returncode == 1, "a name without an ordinal"


def test_the_registrar_joins_the_farm_and_idles_until_the_pod_goes(tmp_path: Path) -> None:
    signal_file = tmp_path / "drained"
    signal_file.touch()  # left by the previous pod's drain
    calls = _stand_in(tmp_path / "bin", "sespcl", "exit 0")
    registrar = subprocess.Popen(
        ["bash", str(NODE_SCRIPTS / "registrar.sh"), "join"],
        env=_env(tmp_path / "bin", SESPCL_DRAIN_SIGNAL=str(signal_file)),
    )
    try:
        deadline = time.monotonic() + 10
        while len(calls.read_text().splitlines() if calls.exists() else []) < 2:
            assert time.monotonic() < deadline and registrar.poll() is None, "the registrar did not join"
            time.sleep(0.05)
        time.sleep(0.2)
        assert registrar.poll() is None, "it stays up: its preStop drains the node"
        registrar.send_signal(signal.SIGTERM)
        assert registrar.wait(timeout=5) == 0
    finally:
        registrar.kill()
    ran = calls.read_text().splitlines()
    assert ran == [
        f"nodes add {POD} --ami-host {POD_IP} --ari-url http://{POD_IP}:8088/ari --driver ami --replace",
        f"nodes undrain {POD}",
    ]
    for line in ran:
        check_sespcl_command(line.split())
    assert not signal_file.exists()


def test_a_registrar_that_cannot_register_exits_to_be_started_again(tmp_path: Path) -> None:
    calls = _stand_in(tmp_path / "bin", "sespcl", "exit 1")
    done = subprocess.run(
        ["bash", str(NODE_SCRIPTS / "registrar.sh"), "join"], env=_env(tmp_path / "bin"), timeout=10
    )
    assert done.returncode == 1
    assert calls.read_text().splitlines() == [
        f"nodes add {POD} --ami-host {POD_IP} --ari-url http://{POD_IP}:8088/ari --driver ami --replace"
    ], "never undrained"


@pytest.mark.parametrize("drains", [True, False])
def test_the_registrars_prestop_drains_then_signals_asterisk(tmp_path: Path, drains: bool) -> None:
    signal_file = tmp_path / "drained"
    calls = _stand_in(tmp_path / "bin", "sespcl", "exit 0" if drains else "exit 1")
    done = subprocess.run(
        ["bash", str(NODE_SCRIPTS / "registrar.sh"), "drain"],
        env=_env(tmp_path / "bin", SESPCL_DRAIN_SIGNAL=str(signal_file)),
        timeout=10,
    )
    assert calls.read_text().splitlines() == [f"nodes drain {POD}"]
    check_sespcl_command(["nodes", "drain", POD])
    assert (done.returncode == 0) == drains
    assert signal_file.exists() == drains, "no signal for a drain that did not happen"


def _drain_wait(tmp_path: Path, channel_counts: list[int], *, drained: bool) -> tuple[int, list[str], float]:
    """drain-wait.sh against a stand-in `asterisk` that reports `channel_counts`, one per ask,
    then stops answering: its exit status, what it asked, and how long it took."""
    signal_file = tmp_path / "drained"
    if drained:
        signal_file.touch()
    answers = tmp_path / "answers"
    answers.write_text("".join(f"{n}\n" for n in channel_counts))
    body = (
        f'n="$(head -n 1 "{answers}")"; [[ -n $n ]] || exit 1; sed -i 1d "{answers}"\n'
        'printf "%s active channels\\n%s active calls\\n7 calls processed\\n" "$n" "$n"'
    )
    asked = _stand_in(tmp_path / "bin", "asterisk", body)
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(NODE_SCRIPTS / "drain-wait.sh")],
        env=_env(
            tmp_path / "bin",
            SESPCL_DRAIN_SIGNAL=str(signal_file),
            SESPCL_DRAIN_SIGNAL_WAIT_S="1",
            SESPCL_DRAIN_SETTLE_S="0",
            SESPCL_DRAIN_POLL_S="0.05",
        ),
        timeout=20,
    )
    return done.returncode, asked.read_text().splitlines(), time.monotonic() - started


def test_asterisk_stops_only_once_its_last_call_has_ended(tmp_path: Path) -> None:
    code, asked, took = _drain_wait(tmp_path, [12, 1, 0, 5], drained=True)
    assert code == 0
    assert asked == [f"-C /etc/asterisk-{POD}/asterisk.conf -rx core show channels count"] * 3
    assert took < 1, "the drain signal was there: no wait for it"


def test_without_the_drain_signal_the_calls_are_still_waited_for(tmp_path: Path) -> None:
    code, asked, took = _drain_wait(tmp_path, [2, 0], drained=False)
    assert code == 0 and len(asked) == 2
    assert took >= 1, "it gave the registrar its time first"


def test_an_asterisk_that_no_longer_answers_is_not_waited_for(tmp_path: Path) -> None:
    code, asked, _ = _drain_wait(tmp_path, [], drained=True)
    assert code == 0 and len(asked) == 1
