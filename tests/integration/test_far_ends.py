"""The SIPp far end that presses keys (sipp/uas-dtmf.xml): the node hears the key chosen on the
carrier's command line (SESPCL_CARRIER_DIGIT), as RFC 4733 telephone-events."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import pytest

from tests.integration.cli import carrier_trunk, stack_env
from tests.node_ami import ContextNode

KEYS = {
    "5": ("t-press-5", "127.0.30.45"),
    "#": ("t-press-pound", "127.0.30.46"),
    "*": ("t-press-star", "127.0.30.47"),
}


@pytest.fixture(scope="module")
def pressing_carriers() -> Iterator[None]:
    with ExitStack() as stack:
        for key, (trunk, address) in KEYS.items():
            stack.enter_context(carrier_trunk(trunk, address, "dtmf", digit=key))
        yield


@pytest.fixture(scope="module")
async def node(pressing_carriers: None) -> AsyncIterator[ContextNode]:
    steps = [
        ("WaitDigit", "10"),
        ("UserEvent", "SespclTestDigit,Digit: ${WAITDIGITRESULT}"),
        ("Hangup", "16"),
    ]
    listening = ContextNode(
        os.environ.get("SESPCL_TEST_AMD_NODE", "127.0.10.1"), "sespcl-test-keys", steps, stack_env()
    )
    await listening.open()
    yield listening
    listening.close()


async def test_each_far_end_presses_its_own_key(node: ContextNode) -> None:
    calls = await asyncio.gather(*(node.call(trunk) for trunk, _ in KEYS.values()))
    for key, seen in zip(KEYS, calls, strict=True):
        reports = seen.named("SespclTestDigit")
        assert seen.hung_up.is_set() and len(reports) == 1 and reports[0].get("Digit") == key, seen.events
