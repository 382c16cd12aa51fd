"""One simulated node: its channels, at most `capacity` of them, each run through its plan on the
event loop's timers, and every step told to the node's listeners (each AMI session, each ARI
event socket), which say it in their protocol's words."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Protocol

from bench.fake_asterisk.calls import Behaviour, Dialed, Kind, Step, Where, hangup_steps, plan

DOWN, RINGING, UP = 0, 5, 6
STATE_NAMES = {DOWN: "Down", RINGING: "Ringing", UP: "Up"}
"""Asterisk's ast_state2str() for the states a simulated channel goes through."""


@dataclass
class Channel:
    dialed: Dialed
    name: str
    """As PJSIP names it: PJSIP/<trunk>-<sequence, 8 hex digits>."""
    protocol_id: str
    """The SIP Call-ID (ARI shows it)."""
    created_at: datetime
    created_mono: float
    state: int = DOWN
    where: Where = Where()
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def uniqueid(self) -> str:
        return self.dialed.uniqueid

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


class Listener(Protocol):
    def tell(self, channel: Channel, step: Step) -> None:
        """One step of a channel, said to this listener's client."""

    def refused(self, dialed: Dialed) -> None:
        """A dial the node made no channel for (over capacity)."""


class FakeNode:
    def __init__(self, name: str, behaviour: Behaviour, *, first_channel: int = 0) -> None:
        self.name = name
        self.behaviour = behaviour
        self.started_at = datetime.now(UTC)
        self.channels: dict[str, Channel] = {}
        self.listeners: list[Listener] = []
        self.dialed = 0
        self.refusals = 0
        self._sequence = first_channel

    def dial(self, dialed: Dialed) -> Channel | None:
        """A channel for the call, its plan begun; None when the node is full (or the id is taken,
        which Asterisk refuses too)."""
        if len(self.channels) >= self.behaviour.capacity or dialed.uniqueid in self.channels:
            self.refusals += 1
            for listener in list(self.listeners):
                listener.refused(dialed)
            return None
        self.dialed += 1
        loop = asyncio.get_running_loop()
        channel = Channel(
            dialed,
            f"PJSIP/{dialed.trunk}-{self._sequence:08x}",
            str(uuid.uuid4()),
            datetime.now(UTC),
            loop.time(),
        )
        self._sequence += 1
        self.channels[dialed.uniqueid] = channel
        self._run(channel, plan(dialed, self.behaviour))
        return channel

    def find(self, channel: str) -> Channel | None:
        """By Uniqueid or by name, as Asterisk's Hangup looks a channel up."""
        found = self.channels.get(channel)
        if found is not None:
            return found
        return next((c for c in self.channels.values() if c.name == channel), None)

    def hang_up(self, channel: str, cause: int) -> bool:
        found = self.find(channel)
        if found is None:
            return False
        for timer in found.timers:
            timer.cancel()
        found.timers.clear()
        self._steps(found, hangup_steps(found.state == UP, cause))
        return True

    def uptime_s(self) -> int:
        return int((datetime.now(UTC) - self.started_at).total_seconds())

    def _run(self, channel: Channel, steps: list[Step]) -> None:
        """The channel is made at once (a POST's reply shows it Down, being dialed); the rest
        follows on the loop's later turns, as Asterisk dials in a thread of its own."""
        loop = asyncio.get_running_loop()
        made, *rest = steps
        self._steps(channel, [made])
        for at_s, group in groupby(rest, key=lambda step: step.at_s):
            channel.timers.append(loop.call_later(max(at_s, 0.0), self._steps, channel, list(group)))

    def _steps(self, channel: Channel, steps: Iterable[Step]) -> None:
        for step in steps:
            if step.kind is Kind.RINGING:
                channel.state = RINGING
            elif step.kind is Kind.ANSWERED:
                channel.state = UP
            elif step.kind in (Kind.REPORT, Kind.HANGUP):
                channel.where = step.where
            for listener in list(self.listeners):
                listener.tell(channel, step)
            if step.kind is Kind.HANGUP:
                self._forget(channel)
                return

    def _forget(self, channel: Channel) -> None:
        for timer in channel.timers:
            timer.cancel()
        self.channels.pop(channel.uniqueid, None)
