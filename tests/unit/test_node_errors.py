"""The port's errors at the drivers' boundary: every error their libraries can raise on the calls
the dispatcher makes (originate, hangup, channel_ids, ping) comes out as a `NodeError`, so the
dispatcher catches those and nothing broader."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from orchestrator.asterisk.ami import AMI_ERRORS, AmiNode
from orchestrator.asterisk.ari import AriNode
from orchestrator.asterisk.ari_rest import ARI_ERRORS
from orchestrator.asterisk.errors import map_errors, port_error
from orchestrator.domain.dialing import (
    NodeError,
    NodeLinkFailed,
    NodeNotConnected,
    NodeRefused,
    NodeTimeout,
)
from tests.unit.factories import originate_request
from tests.unit.fakes import FailingHttp, SilentManager, ami_up, ari_up

AIOHTTP_ERRORS = sorted(
    (
        error
        for name in aiohttp.__all__
        if isinstance(error := getattr(aiohttp, name), type) and issubclass(error, aiohttp.ClientError)
    ),
    key=lambda error: error.__name__,
)
"""Every error aiohttp's client raises (its ClientError family, as it exports them)."""


@pytest.mark.parametrize("error", [*AIOHTTP_ERRORS, TimeoutError, OSError, ConnectionResetError])
def test_every_aiohttp_error_is_a_port_error(error: type[BaseException]) -> None:
    mapped = port_error(ARI_ERRORS, error)
    assert mapped is not None and issubclass(mapped, NodeError)
    if issubclass(error, TimeoutError):
        assert mapped is NodeTimeout
    elif issubclass(error, aiohttp.ClientResponseError):
        assert mapped is NodeRefused
    elif issubclass(error, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)):
        assert mapped is NodeLinkFailed


@pytest.mark.parametrize("error", [TimeoutError, OSError, ConnectionResetError, BrokenPipeError])
def test_every_error_under_panoramisk_is_a_port_error(error: type[BaseException]) -> None:
    """panoramisk defines none of its own: a reply waited for too long, or the socket's."""
    mapped = port_error(AMI_ERRORS, error)
    assert mapped is (NodeTimeout if error is TimeoutError else NodeLinkFailed)


def test_map_errors_says_what_was_being_done_and_passes_the_rest() -> None:
    timeout = pytest.raises(NodeTimeout, match=r"^Hangup on n1: no reply within 10 s$")
    with timeout, map_errors(AMI_ERRORS, "Hangup on n1", within_s=10.0):
        raise TimeoutError
    reset = pytest.raises(NodeLinkFailed, match="Hangup on n1: .*reset")
    with reset as caught, map_errors(AMI_ERRORS, "Hangup on n1"):
        raise ConnectionResetError("connection reset")
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    with pytest.raises(KeyError), map_errors(AMI_ERRORS, "x"):  # a bug is not the node's fault
        raise KeyError("x")
    with pytest.raises(asyncio.CancelledError), map_errors(AMI_ERRORS, "x"):
        raise asyncio.CancelledError


def _ami() -> AmiNode:
    return AmiNode("n1", host="127.0.0.1", port=5038, username="u", secret="s", on_event=lambda *a: None)


def _ari() -> AriNode:
    return AriNode("n1", url="http://127.0.0.1:9/ari", username="u", password="p", on_event=lambda *a: None)


async def _calls(node: Any, **hangup: float) -> dict[str, Any]:
    """Each call the dispatcher makes of a node: what it raised (ping: what it returned)."""
    outcomes: dict[str, Any] = {}
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "originate": lambda: node.originate(originate_request(), wait_s=0.05),
        "hangup": lambda: node.hangup("PJSIP/demo-00000001", **hangup),
        "hangup by id": lambda: node.hangup("a1b2", **hangup),
        "channel_ids": lambda: node.channel_ids(timeout=0.05),
    }
    for name, call in calls.items():
        try:
            await call()
        except BaseException as exc:
            outcomes[name] = exc
        else:
            outcomes[name] = None
    outcomes["ping"] = await node.ping(timeout=0.05)
    return outcomes


async def test_ami_calls_raise_only_port_errors() -> None:
    down = await _calls(_ami())
    assert all(isinstance(down[name], NodeNotConnected) for name in down if name != "ping")
    assert down["ping"] is False
    for manager, expected in (
        (SilentManager(), NodeTimeout),
        (SilentManager(OSError("gone")), NodeLinkFailed),
    ):
        node = _ami()
        ami_up(node, manager)
        outcomes = await _calls(node, timeout=0.05)
        assert outcomes["ping"] is False
        for name in ("originate", "hangup", "hangup by id", "channel_ids"):
            assert isinstance(outcomes[name], expected), (name, outcomes[name])


ARI_FAILURES = [
    TimeoutError(),
    aiohttp.ServerTimeoutError("slow"),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientOSError(104, "reset"),
    aiohttp.ClientPayloadError("cut"),
    aiohttp.ClientConnectionResetError("reset"),
    aiohttp.InvalidURL("x"),
    ConnectionResetError("reset"),
]


async def test_ari_calls_raise_only_port_errors_when_down() -> None:
    down = await _calls(_ari())
    assert all(isinstance(down[name], NodeNotConnected) for name in down if name != "ping")
    assert down["ping"] is False


@pytest.mark.parametrize("failure", ARI_FAILURES, ids=lambda e: type(e).__name__)
async def test_ari_calls_raise_only_port_errors(failure: BaseException) -> None:
    node = _ari()
    ari_up(node, FailingHttp(failure))
    outcomes = await _calls(node)
    assert outcomes["ping"] is False
    expected = port_error(ARI_ERRORS, type(failure))
    assert expected is not None
    for name in ("originate", "hangup", "hangup by id", "channel_ids"):
        assert isinstance(outcomes[name], expected), (name, outcomes[name])
