"""The node's [sespcl-amd] subroutine (asterisk-config/extensions.conf) on a real Asterisk, driven
over AMI into a context the test adds at run time, against SIPp far ends that speak: what the
node decides whatever a dispatcher does with it.

Node n1 by default; SESPCL_TEST_AMD_NODE names another node's AMI address (secrets from
SESPCL_STATE_DIR, trunks through `sespcl trunks add` in DATABASE_URL's database)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.cli import speaking_carriers, stack_env
from tests.node_ami import ContextNode, Seen

CONTEXT = "sespcl-test-amd"
STEPS = [("Gosub", "sespcl-amd,s,1"), ("Hangup", "16")]


def amd(mode: str, amd_args: str = ":::") -> dict[str, str]:
    return {"SESPCL_AMD": mode, "SESPCL_AMD_ARGS": amd_args}


@pytest.fixture(scope="module")
def far_ends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with speaking_carriers(
        tmp_path_factory.mktemp("amd-far-ends"),
        human=("t-amd-human", "127.0.30.43"),
        voicemail=("t-amd-voicemail", "127.0.30.44"),
    ):
        yield


NODE_AMI = os.environ.get("SESPCL_TEST_AMD_NODE", "127.0.10.1")


@pytest.fixture(scope="module")
async def node(far_ends: None) -> AsyncIterator[ContextNode]:
    amd_node = ContextNode(NODE_AMI, CONTEXT, STEPS, stack_env())
    await amd_node.open()
    yield amd_node
    amd_node.close()


@pytest.fixture(scope="module")
async def short_node(far_ends: None) -> AsyncIterator[ContextNode]:
    """Calls that may last 4 s, as [sespcl-outbound] sets TIMEOUT(absolute) from SESPCL_MAX_CALL_S."""
    steps = [("Set", "TIMEOUT(absolute)=4"), *STEPS]
    limited = ContextNode(NODE_AMI, "sespcl-test-amd-limit", steps, stack_env())
    await limited.open()
    yield limited
    limited.close()


def _machine(seen: Seen) -> dict[str, str]:
    reports = seen.named("SespclMachine")
    assert seen.hung_up.is_set() and len(reports) == 1, seen.events
    return reports[0]


async def test_a_person_then_a_box_each_end_once(node: ContextNode) -> None:
    human, box, box_start = await asyncio.gather(
        node.call("t-amd-human", amd("end")),
        node.call("t-amd-voicemail", amd("end")),
        node.call("t-amd-voicemail", amd("start")),
    )
    assert _machine(human)["Status"] == "HUMAN" and _machine(human).get("End", "") == ""
    report = _machine(box)
    assert report["Status"] == "MACHINE" and report["End"] == "beep", report
    assert _machine(box_start)["Status"] == "MACHINE" and _machine(box_start).get("End", "") == ""
    # the box's verdict waits for its beep; the "start" one does not
    assert (
        box.at("SespclMachine") - box.at("Newchannel")
        > 5
        > box_start.at("SespclMachine") - box_start.at("Newchannel")
    )


async def test_a_hangup_during_the_analysis_reports_once_and_ends(node: ContextNode) -> None:
    seen = await node.call("t-amd-voicemail", amd("end"), hang_up_after_s=0.5)
    assert _machine(seen)["Status"] == "HANGUP", seen.events
    assert seen.at("SespclMachine") <= seen.at("Hangup")


async def test_a_hangup_while_waiting_for_the_beep_is_machine_end_other(node: ContextNode) -> None:
    seen = await node.call("t-amd-voicemail", amd("end"), hang_up_after_s=4)
    report = _machine(seen)
    assert report["Status"] == "MACHINE" and report["End"] == "other", report


async def test_the_calls_maximum_length_while_waiting_for_the_beep(short_node: ContextNode) -> None:
    """The limit runs out in the subroutine: it reports once, and [sespcl-outbound]'s T ends the
    call with its own report, as it does anywhere else."""
    seen = await short_node.call("t-amd-voicemail", amd("end"))
    report = _machine(seen)
    assert report["Status"] == "MACHINE" and report["End"] == "other", report
    assert len(seen.named("SespclMaxCallLength")) == 1, seen.events
    assert 3.5 < seen.at("Hangup") - seen.at("Newchannel") < 8, seen.events


@pytest.mark.parametrize(
    ("mode", "amd_args"),
    [
        ("start", "${SHELL(id)}:)(;\\,:1500"),
        ("end;Hangup(17)", ":::"),
        ("START", "99999999999:1:2:3:4:5:6:7"),
    ],
)
async def test_hostile_inputs_are_filtered(node: ContextNode, mode: str, amd_args: str) -> None:
    """Whatever the variables hold, the node never evaluates them: an unknown mode returns
    without analysis (no report), odd arguments are cut to digits."""
    seen = await node.call("t-amd-human", amd(mode, amd_args))
    reports = seen.named("SespclMachine")
    if mode == "start":
        assert len(reports) == 1 and reports[0]["Status"] in {"HUMAN", "MACHINE", "NOTSURE"}, seen.events
    else:
        assert reports == [], seen.events
    assert seen.named("Hangup")[0].get("Cause") == "16"
