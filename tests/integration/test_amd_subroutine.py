"""The node's [sespcl-amd] subroutine (asterisk-config/extensions.conf) on a real Asterisk, driven
over AMI into a context the test adds at run time, against SIPp far ends that speak: what the
node decides whatever a dispatcher does with it.

Node n1 by default; SESPCL_TEST_AMD_NODE names another node's AMI address (secrets from
SESPCL_STATE_DIR, trunks through `sespcl trunks add` in DATABASE_URL's database)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from panoramisk import Manager

from orchestrator.asterisk.ami import header_value
from tests.integration.cli import speaking_carriers, stack_env

CONTEXT = "sespcl-test-amd"


@dataclass
class Seen:
    """One call's events on the node, by name, with when they came."""

    events: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    def named(self, name: str) -> list[dict[str, str]]:
        return [fields for _, n, fields in self.events if n == name]

    def at(self, name: str) -> float:
        return next(t for t, n, _ in self.events if n == name)


class AmdNode:
    def __init__(self, address: str) -> None:
        secrets = stack_env()
        self.calls: dict[str, Seen] = {}
        self.ami = Manager(
            host=address, port=5038, username="sespcl", secret=secrets["SESPCL_AMI_SECRET"], ping_delay=3600
        )
        self.admin = Manager(
            host=address,
            port=5038,
            username="sespcl-admin",
            secret=secrets["SESPCL_AMI_ADMIN_SECRET"],
            ping_delay=3600,
        )
        self.ami.register_event("*", self._on_event)

    async def open(self) -> None:
        await self.ami.connect()
        await self.admin.connect()
        for priority, (app, data) in enumerate((("Gosub", "sespcl-amd,s,1"), ("Hangup", "16")), start=1):
            reply = await self.admin.send_action(
                {
                    "Action": "DialplanExtensionAdd",
                    "Context": CONTEXT,
                    "Extension": "s",
                    "Priority": str(priority),
                    "Application": app,
                    "ApplicationData": data,
                    "Replace": "yes",
                }
            )
            assert reply.get("Response") == "Success", dict(reply)

    def close(self) -> None:
        self.ami.close()
        self.admin.close()

    def _on_event(self, _: Manager, event: Any) -> None:
        seen = self.calls.get(event.get("Uniqueid", ""))
        if seen is None:
            return
        seen.events.append((time.monotonic(), event.get("UserEvent") or event.get("Event"), dict(event)))
        if event.get("Event") == "Newstate" and event.get("ChannelStateDesc") == "Up":
            seen.answered.set()
        if event.get("Event") == "Hangup":
            seen.hung_up.set()

    async def call(
        self, trunk: str, mode: str, amd_args: str = ",,,", *, hang_up_after_s: float | None = None
    ) -> Seen:
        attempt = str(uuid.uuid4())
        seen = self.calls[attempt] = Seen()
        variables = {"CALLID": attempt, "SESPCL_AMD": mode, "SESPCL_AMD_ARGS": amd_args}
        await self.ami.send_action(
            {
                "Action": "Originate",
                "ChannelId": attempt,
                "Channel": f"PJSIP/+14152{uuid.uuid4().int % 900000 + 100000:06d}@{trunk}",
                "Context": CONTEXT,
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Timeout": "10000",
                # Originate splits a Variable header at bare commas: SESPCL_AMD_ARGS's are escaped
                "Variable": [
                    f"{k}={header_value(v).replace(',', chr(92) + ',')}" for k, v in variables.items()
                ],
            }
        )
        if hang_up_after_s is not None:
            await self._hang_up_after_answer(seen, hang_up_after_s)
        await asyncio.wait_for(seen.hung_up.wait(), 90)
        return seen

    async def _hang_up_after_answer(self, seen: Seen, after_s: float) -> None:
        await asyncio.wait_for(seen.answered.wait(), 20)
        await asyncio.sleep(after_s)  # when the far end hangs up is the scenario, not a synchronisation
        channel = seen.named("Newstate")[-1]["Channel"]
        await self.ami.send_action({"Action": "Hangup", "Channel": channel, "Cause": "16"})


@pytest.fixture(scope="module")
def far_ends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with speaking_carriers(
        tmp_path_factory.mktemp("amd-far-ends"),
        human=("t-amd-human", "127.0.30.43"),
        voicemail=("t-amd-voicemail", "127.0.30.44"),
    ):
        yield


@pytest.fixture(scope="module")
async def node(far_ends: None) -> AsyncIterator[AmdNode]:
    amd_node = AmdNode(os.environ.get("SESPCL_TEST_AMD_NODE", "127.0.10.1"))
    await amd_node.open()
    yield amd_node
    amd_node.close()


def _machine(seen: Seen) -> dict[str, str]:
    reports = seen.named("SespclMachine")
    assert len(reports) == 1, seen.events
    return reports[0]


async def test_a_person_then_a_box_each_end_once(node: AmdNode) -> None:
    human, box, box_start = await asyncio.gather(
        node.call("t-amd-human", "end"),
        node.call("t-amd-voicemail", "end"),
        node.call("t-amd-voicemail", "start"),
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


async def test_a_hangup_during_the_analysis_reports_once_and_ends(node: AmdNode) -> None:
    seen = await node.call("t-amd-voicemail", "end", hang_up_after_s=0.5)
    assert _machine(seen)["Status"] == "HANGUP", seen.events
    assert seen.at("SespclMachine") <= seen.at("Hangup")


async def test_a_hangup_while_waiting_for_the_beep_is_machine_end_other(node: AmdNode) -> None:
    seen = await node.call("t-amd-voicemail", "end", hang_up_after_s=4)
    report = _machine(seen)
    assert report["Status"] == "MACHINE" and report["End"] == "other", report


@pytest.mark.parametrize(
    ("mode", "amd_args"),
    [
        ("start", "${SHELL(id)},)(;\\,1500"),
        ("end;Hangup(17)", ",,,"),
        ("START", "99999999999,1,2,3,4,5,6,7"),
    ],
)
async def test_hostile_inputs_are_filtered(node: AmdNode, mode: str, amd_args: str) -> None:
    """Whatever the variables hold, the node never evaluates them: an unknown mode returns
    without analysis (no report), odd arguments are cut to digits."""
    seen = await node.call("t-amd-human", mode, amd_args)
    reports = seen.named("SespclMachine")
    if mode == "start":
        assert len(reports) == 1 and reports[0]["Status"] in {"HUMAN", "MACHINE", "NOTSURE"}, seen.events
    else:
        assert reports == [], seen.events
    assert seen.named("Hangup")[0].get("Cause") == "16"
