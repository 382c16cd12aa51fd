"""The nodes this dispatcher dials: per node its connection, its row, its pacer and its health."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from orchestrator.domain.pacing import NodePacer, PacerSettings
from orchestrator.domain.planning import NodeLoad
from orchestrator.domain.ports import DialNode
from orchestrator.domain.records import NodeRow
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.settings import PING_FAILURES_DOWN


@dataclass
class NodeHealth:
    """What was seen of a node, by name: it outlives the node's connection (replaced when its
    row's connection settings change) and its row."""

    ping_failures: int = 0
    silent_since: float | None = None
    """Monotonic: since when it has not been usable."""
    declared_lost: bool = False
    """Its calls were failed as lost; not again until it has been usable."""
    boot_id: str | None = None
    """When its Asterisk started, as last seen: another value means it restarted."""


@dataclass
class NodeHandle:
    driver: DialNode
    row: NodeRow
    pacer: NodePacer
    health: NodeHealth = field(default_factory=NodeHealth)

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def usable(self) -> bool:
        """Logged in and answering pings: a node that hangs keeps its TCP session open."""
        return self.driver.up and self.health.ping_failures < PING_FAILURES_DOWN

    def load(self, live: int, now: float) -> NodeLoad:
        row = self.row
        return NodeLoad(
            row.name, live, row.max_channels, self.usable, row.drained, allowance=self.pacer.allowance(now)
        )


class NodeHandles:
    """By node name, in the order they were connected. `connect` makes a row's driver (its
    callbacks bound); `connect()` is called on it here."""

    def __init__(self, connect: Callable[[NodeRow], DialNode], pacing: PacerSettings, clock: Clock) -> None:
        self._connect = connect
        self._pacing = pacing
        self._clock = clock
        self._handles: dict[str, NodeHandle] = {}
        self._health: dict[str, NodeHealth] = {}

    def __iter__(self) -> Iterator[NodeHandle]:
        return iter(list(self._handles.values()))

    def get(self, name: str) -> NodeHandle | None:
        return self._handles.get(name)

    def pacer_of(self, name: str) -> NodePacer | None:
        handle = self._handles.get(name)
        return handle.pacer if handle is not None else None

    def usable(self, name: str) -> bool:
        handle = self._handles.get(name)
        return handle is not None and handle.usable

    def driver_name(self, name: str) -> str:
        """'ami' or 'ari', as the node's events are named ('ami' for a node gone meanwhile)."""
        handle = self._handles.get(name)
        return handle.driver.driver if handle is not None else "ami"

    def add(self, row: NodeRow, driver: DialNode) -> NodeHandle:
        """A node newly connected: its pace starts afresh, its health is what was seen of it."""
        handle = NodeHandle(
            driver,
            row,
            NodePacer(self._pacing, now=self._clock.monotonic()),
            self._health.setdefault(row.name, NodeHealth()),
        )
        self._handles[row.name] = handle
        return handle

    def refresh(self, rows: list[NodeRow]) -> None:
        """As the nodes table now says: removed nodes are closed, new ones connected, and one
        whose connection settings changed is connected again."""
        by_name = {row.name: row for row in rows}
        for name in set(self._handles) - set(by_name):
            self._handles.pop(name).driver.close()
        for name, row in by_name.items():
            handle = self._handles.get(name)
            if handle is not None and handle.row.connection != row.connection:
                self._handles.pop(name).driver.close()
                handle = None
            if handle is None:
                driver = self._connect(row)
                driver.connect()
                handle = self.add(row, driver)
            handle.row = row

    def loads(self, live: dict[str, int], now: float) -> list[NodeLoad]:
        """Each node's load for a plan: `live` attempts per node."""
        return [handle.load(live.get(handle.name, 0), now) for handle in self._handles.values()]

    def close(self) -> None:
        for handle in self._handles.values():
            handle.driver.close()
