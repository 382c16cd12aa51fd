"""AmiNode on its LinkKeeper, against a fake AMI server (tests/unit/fake_ami.py): up reported only
once the version and the boot are read, a fresh Manager per connection, the retired one
disarmed, events typed on their way to the dispatcher."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.asterisk import ami_panoramisk
from orchestrator.asterisk.ami import AmiNode
from orchestrator.domain.events import ChannelEvent, ChannelHungUp
from tests.unit.fake_ami import FakeAmi
from tests.unit.fakes import eventually


def _node(port: int, **callbacks: Any) -> AmiNode:
    callbacks.setdefault("on_event", lambda *a: None)
    return AmiNode("n1", host="127.0.0.1", port=port, username="u", secret="s", **callbacks)


async def test_up_after_version_and_boot_then_down_and_back_on_a_fresh_manager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    managers: list[Any] = []
    new_manager = ami_panoramisk.new_manager

    def recorded(**settings: Any) -> Any:
        managers.append(new_manager(**settings))
        return managers[-1]

    monkeypatch.setattr(ami_panoramisk, "new_manager", recorded)
    fake = FakeAmi()
    port = await fake.start()
    states: list[tuple[bool, str | None, str | None]] = []
    events: list[ChannelEvent] = []
    node: AmiNode

    def on_state(name: str, up: bool) -> None:
        states.append((up, node.version, node.boot_id))

    node = _node(port, on_event=lambda name, event: events.append(event), on_state=on_state)
    try:
        node.connect()
        await eventually(lambda: states, within_s=5)
        assert states == [(True, "22.fake", "2026-12-01 12:00:00")], "told once the node is known"
        assert fake.actions[:3] == ["Login", "CoreSettings", "CoreStatus"]
        assert await node.ping() is True

        fake.channels["a-1"] = "Up"
        assert await node.channel_ids() == {"a-1": "Up"}
        await fake.emit({"Event": "Hangup", "Uniqueid": "a-1", "Cause": "16", "ChannelStateDesc": "Up"})
        await eventually(lambda: events)
        assert isinstance(events[0], ChannelHungUp) and events[0].attempt_id == "a-1"
        assert events[0].recorded is not None and events[0].recorded.name == "Hangup"

        fake.boot = "12:05:00"  # restarted while away
        await fake.drop()
        await eventually(lambda: len(states) == 3, within_s=5)
        assert states[1][0] is False and states[2] == (True, "22.fake", "2026-12-01 12:05:00")
        assert fake.logins == 2 and len(managers) == 2
        assert managers[0].connect() is None, "the retired Manager can never connect again"
        await eventually(lambda: fake.logins == 2)
    finally:
        await node.aclose()
        await fake.stop()
    assert len(states) == 3, "a close is not reported as a link lost"
    assert not node.up


async def test_a_node_that_never_answers_the_login_is_not_up() -> None:
    """A port that accepts and says nothing (a node that hangs): the login times out, retried."""

    async def mute(reader: Any, writer: Any) -> None:
        await reader.read()

    import asyncio

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    states: list[bool] = []
    node = _node(port, on_state=lambda name, up: states.append(up))
    try:
        node.connect()
        assert await node.wait_up(0.5) is False
        assert states == [] and await node.ping() is False
    finally:
        await node.aclose()
        server.close()
