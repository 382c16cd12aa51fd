"""This dispatcher among the others: its heartbeat, and the attempts of one that stopped, taken
over (followed if they were sent, queued again if not)."""

from __future__ import annotations

import os
import socket

import structlog

from orchestrator.domain.attempt import AttemptState
from orchestrator.domain.call import CallStatus
from orchestrator.domain.ports import DispatchRepository, Unsent
from orchestrator.domain.records import AdoptedAttempt
from orchestrator.services.dispatch.clock import Clock
from orchestrator.services.dispatch.live import LiveAttempts
from orchestrator.services.dispatch.reconcile import Reconciler
from orchestrator.services.dispatch.settings import ORPHAN_AFTER_S, RECONCILE_MIN_AGE_S
from orchestrator.services.dispatch.tasks import Background
from orchestrator.services.dispatch.unsent import UnsentAttempts

log = structlog.get_logger(__name__)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _adopted_state(adopted: AdoptedAttempt) -> AttemptState:
    return AttemptState(
        adopted.attempt_id,
        adopted.call_id,
        adopted.node,
        status=adopted.status,
        channel=adopted.channel,
        answered=adopted.answered,
        cancel_requested=adopted.cancel_requested,
        far_end_responded=adopted.status in (CallStatus.RINGING, CallStatus.IN_PROGRESS),
        number=adopted.number,
        retry=adopted.retry,
    )


class Adoption:
    def __init__(
        self,
        store: DispatchRepository,
        live: LiveAttempts,
        unsent: UnsentAttempts,
        reconciler: Reconciler,
        clock: Clock,
        background: Background,
    ) -> None:
        self._store = store
        self._live = live
        self._unsent = unsent
        self._reconciler = reconciler
        self._clock = clock
        self._background = background

    async def heartbeat(self) -> None:
        await self._store.heartbeat(socket.gethostname(), os.getpid())

    async def adopt_orphans(self) -> None:
        """Follow the attempts of a dispatcher that stopped (its heartbeat is stale), then check
        them against what their nodes really have."""
        # A dispatcher of this machine whose process is gone (SIGKILL, crash) need not be waited
        # for: its heartbeat would take ORPHAN_AFTER_S to go stale.
        dead_here = [
            ident
            for ident, pid in await self._store.dispatchers_on(socket.gethostname())
            if not _process_alive(pid)
        ]
        adopted = await self._store.adopt_orphans(ORPHAN_AFTER_S, dead_here)
        # Claimed by the dead dispatcher but never sent: back to the queue (below), not followed.
        unsent = [a.attempt_id for a in adopted if not a.originate_sent]
        self._follow([a for a in adopted if a.originate_sent])
        if unsent:
            # Ours now, so the periodic retry may requeue them if this fails: they are known unsent.
            self._unsent.add(unsent, Unsent.NOT_SENT)
            await self._unsent.requeue()

    def _follow(self, adopted: list[AdoptedAttempt]) -> None:
        youngest: dict[str, float] = {}  # per node: its youngest adopted attempt's age, s
        for attempt in adopted:
            age = (self._clock.now() - attempt.started_at).total_seconds()
            self._live.adopted(
                _adopted_state(attempt),
                self._clock.monotonic() - age,
                attempt.ring_timeout_s,
                trunk=attempt.trunk,
                campaign_id=attempt.campaign_id,
            )
            youngest[attempt.node] = min(age, youngest.get(attempt.node, age))
        if adopted:
            log.warning("dispatch.adopted", count=len(adopted))
            for name, age in youngest.items():
                self._background.spawn(
                    self._reconciler.reconcile_adopted(name, RECONCILE_MIN_AGE_S - age + 1.0)
                )
