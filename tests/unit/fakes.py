"""Fakes of the dispatcher's ports and clock, shared by its unit tests; `make_dispatcher` builds
one on them."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from orchestrator.domain.attempt import Transition
from orchestrator.domain.dialing import NodeNotConnected, OriginateOutcome, OriginateRequest
from orchestrator.domain.facts import CallFact, Change
from orchestrator.domain.ports import Unsent
from orchestrator.domain.records import (
    AdoptedAttempt,
    CallEvent,
    Claim,
    Marked,
    NodeRow,
    Requeued,
    StoredStatus,
)
from orchestrator.services.dispatch import Dispatcher, DispatchSettings
from orchestrator.services.dispatch.meter import DispatchMeter
from tests.unit.cancel_fakes import NoCanceledCampaigns
from tests.unit.factories import node_row

SETTLE_TURNS = 20
"""Loop turns that let woken tasks run until they wait again: the fakes never wait on I/O."""


class FakeClock:
    """Time that moves only when a test says so. `sleep` waits for `advance` to pass its end:
    a step that sleeps 2 s takes no time in the test, and its order with other sleepers holds."""

    def __init__(self, start: float = 1000.0) -> None:
        self._mono = start
        self._wall = datetime(2026, 12, 1, 12, 0, tzinfo=UTC) - timedelta(seconds=start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall + timedelta(seconds=self._mono)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._order), woken))
        await woken

    async def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, waking each sleeper at its time, in order."""
        until = self._mono + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            at, _, woken = heapq.heappop(self._sleepers)
            self._mono = max(self._mono, at)
            if not woken.done():
                woken.set_result(None)
            await settle()
        self._mono = until
        await settle()


async def settle() -> None:
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)


async def eventually(condition: Callable[[], object], within_s: float = 2.0) -> None:
    """Wait (real time) until `condition()` holds: for work done in threads or real tasks."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


ANSWERED = OriginateOutcome(True, 4)


class FakeNode:
    """A DialNode that answers at once: `outcome` to every Originate (or NodeNotConnected when
    not `connected`), `channels` to a listing; a hangup that hangs never returns."""

    version: str | None = None

    def __init__(
        self,
        name: str = "n1",
        *,
        connected: bool = True,
        hangup_hangs: bool = False,
        outcome: OriginateOutcome = ANSWERED,
        driver: str = "ami",
        clock: FakeClock | None = None,
    ) -> None:
        self.name = name
        self.driver = driver
        self.boot_id: str | None = None
        self.up = True
        self.channels: dict[str, str] = {}
        self.hung_up: list[str] = []
        self.sent: dict[str, float] = {}
        """Attempt id → when its Originate came (the clock's monotonic time)."""
        self.closed = False
        self._connected = connected
        self._hangup_hangs = hangup_hangs
        self._outcome = outcome
        self._clock = clock

    def connect(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    async def originate(self, request: OriginateRequest, *, wait_s: float) -> OriginateOutcome:
        if not self._connected:
            raise NodeNotConnected(f"node {self.name} is not connected")
        self.sent[request.attempt_id] = self._clock.monotonic() if self._clock is not None else 0.0
        return self._outcome

    async def hangup(self, channel: str, cause: int = 16) -> None:
        if self._hangup_hangs:
            await asyncio.Event().wait()
        self.hung_up.append(channel)

    async def ping(self, timeout: float = 2.0) -> bool:
        return self.up

    async def channel_ids(self, timeout: float = 10.0) -> dict[str, str]:
        return dict(self.channels)


class FakeStore:
    """A DispatchRepository in memory: `claims` handed out in plan order, `adopted` at the first
    adoption, `cancel` as the calls whose cancel was asked for, every CDR `cdr`; what the
    dispatcher asked is kept in the lists."""

    def __init__(
        self,
        *,
        claims: list[Claim] | None = None,
        adopted: list[AdoptedAttempt] | None = None,
        cancel: list[uuid.UUID] | None = None,
        cdr: str | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self._claims = claims or []
        self._adopted = adopted or []
        self._cancel = cancel or []
        self._cdr = cdr
        self._clock = clock
        self.marked: list[tuple[float, list[uuid.UUID]]] = []
        self.requeued: list[tuple[str, Any]] = []
        self.applied: list[Transition] = []
        self.facts: list[CallFact] = []
        self.heartbeats = 0
        self.retired = False

    async def nodes(self) -> list[NodeRow]:
        return []

    async def mark_node(
        self, name: str, *, up: bool, version: str | None = None, pace_cps: float | None = None
    ) -> None:
        pass

    async def claim(self, node_plan: list[str]) -> list[Claim]:
        return self._claims[: len(node_plan)]

    async def mark_sending(self, attempt_ids: list[uuid.UUID]) -> Marked:
        self.marked.append((self._clock.monotonic() if self._clock is not None else 0.0, attempt_ids))
        return Marked(frozenset(attempt_ids))

    async def requeue_unsent(self, attempt_ids: list[uuid.UUID], why: Unsent) -> list[Requeued]:
        self.requeued.append((why.name, sorted(attempt_ids)))
        return []

    async def requeue_stray(self, older_than_s: float) -> list[Requeued]:
        self.requeued.append(("stray", older_than_s))
        return []

    async def apply(self, transitions: Sequence[Change]) -> list[StoredStatus | None]:
        self.applied.extend(t for t in transitions if isinstance(t, Transition))
        self.facts.extend(t for t in transitions if isinstance(t, CallFact))
        return [StoredStatus(t.status) if isinstance(t, Transition) else None for t in transitions]

    async def heartbeat(self, host: str, pid: int) -> None:
        self.heartbeats += 1

    async def retire(self) -> None:
        self.retired = True

    async def adopt_orphans(
        self, stale_after_s: float, dead_here: list[str] | None = None
    ) -> list[AdoptedAttempt]:
        adopted, self._adopted = self._adopted, []
        return adopted

    async def dispatchers_on(self, host: str) -> list[tuple[str, int]]:
        return []

    async def cancel_requests(self) -> list[uuid.UUID]:
        return self._cancel

    async def stale_renders(self, older_than_s: float) -> list[str]:
        return []

    async def expire_due(self) -> int:
        return 0

    async def fold_status_counts(self) -> int:
        return 0

    async def record_events(self, batch: list[CallEvent]) -> int:
        return len(batch)

    async def cdr_dispositions(self, attempt_ids: list[str]) -> dict[str, str]:
        return {key: self._cdr for key in attempt_ids} if self._cdr else {}


class FakeSink:
    """An EventSink whose jobs are all recorded at once."""

    def __init__(self) -> None:
        self.batches: list[list[CallEvent]] = []

    def enqueue_events(self, batch: list[CallEvent]) -> str:
        self.batches.append(list(batch))
        return f"job-{len(self.batches)}"

    def batch_state(self, job_id: str) -> str:
        return "done"

    def requeue_lost_renders(self, audio_hashes: list[str]) -> int:
        return 0


SETTINGS = DispatchSettings(
    poll_s=0.2,
    batch=50,
    cps=100,
    max_call_s=600,
    finalize_grace_s=30,
    originate_failure_wait_s=0.0,
    events_flush_s=1.0,
    events_batch_max=1000,
)


def make_dispatcher(
    store: FakeStore | None = None,
    *,
    clock: FakeClock | None = None,
    settings: DispatchSettings = SETTINGS,
    nodes: tuple[FakeNode, ...] = (),
    sink: FakeSink | None = None,
    meter: DispatchMeter | None = None,
) -> Dispatcher:
    """A dispatcher on fake ports, its `nodes` connected (a row each, as the nodes table has them)."""

    async def reachable(_: NodeRow) -> bool:
        return True

    def no_connections(row: NodeRow, *callbacks: Any) -> FakeNode:
        raise AssertionError(f"unexpected connection to {row.name}")

    ports = (store or FakeStore(), no_connections, sink or FakeSink(), settings, reachable)
    dispatcher = Dispatcher(*ports, clock or FakeClock(), cancels=NoCanceledCampaigns(), meter=meter)
    for node in nodes:
        dispatcher.nodes.add(node_row(node.name, driver=node.driver), node)
    return dispatcher


# ---- drivers up on fake transports (no network): for what their calls raise -----------------


class SilentManager:
    """A logged-in panoramisk Manager whose actions are never answered, or fail with `error`."""

    protocol = object()

    def __init__(self, error: BaseException | None = None) -> None:
        self._error = error

    def send_action(self, action: dict[str, Any], as_list: bool | None = None) -> asyncio.Future[Any]:
        if self._error is not None:
            raise self._error
        return asyncio.get_running_loop().create_future()

    def close(self) -> None:
        pass


class IdleLink:
    """A link that stays up until closed, and answers pings."""

    retry_after_s: float | None = None

    async def serve(self) -> None:
        await asyncio.Event().wait()

    async def ping(self, timeout: float) -> bool:
        return True

    async def close(self) -> None:
        pass

    def ended(self) -> dict[str, Any]:
        return {}


def hold_link(keeper: Any, link: Any) -> None:
    """`keeper` (a LinkKeeper) holding `link` as up, without its task: what a driver does with
    its link, on a link the test made."""
    keeper._link = link
    keeper._up.set()


def connect_on(manager: Any, transport: Any) -> Any:
    """A panoramisk Manager connected on `transport` as Manager.connection_made leaves it (its
    Login sent, its keep-alive timer off); the protocol it talks through."""
    protocol = manager.config["protocol_factory"]()
    protocol.connection_made(transport)
    protocol.transport = transport
    made: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    made.set_result((transport, protocol))
    manager.connection_made(made)
    manager.pinger.cancel()
    return protocol


def ami_up(node: Any, manager: Any) -> None:
    """`node` (an AmiNode) logged in through `manager`."""
    from orchestrator.asterisk.ami import AmiLink

    hold_link(node._keeper, AmiLink(node.name, node._login, lambda fields: None, manager=manager))


class FailingHttp:
    """An aiohttp.ClientSession whose every request fails with `error`."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def post(self, *args: Any, **kwargs: Any) -> Any:
        return self

    async def __aenter__(self) -> Any:
        raise self._error

    async def __aexit__(self, *exc: object) -> None:
        pass


class QuietSocket:
    """An event WebSocket that brings nothing."""

    close_code: int | None = None

    def __aiter__(self) -> AsyncIterator[aiohttp.WSMessage]:
        return self._nothing()

    async def _nothing(self) -> AsyncIterator[aiohttp.WSMessage]:
        return
        yield  # an async generator that ends at once

    async def close(self) -> bool:
        self.close_code = 1000
        return True


def ari_up(node: Any, http: Any) -> None:
    """`node` (an AriNode) as if its event WebSocket were up, its REST calls going to `http`."""
    from orchestrator.asterisk.ari_link import AriLink

    node._rest.session = http
    hold_link(node._keeper, AriLink(node.name, node._app, QuietSocket(), node._rest, lambda message: None))


def drained_transitions(dispatcher: Dispatcher) -> list[Transition]:
    """The status transitions queued to be stored (the facts left out), taken out."""
    return [t for t in dispatcher.transitions.drain() if isinstance(t, Transition)]
