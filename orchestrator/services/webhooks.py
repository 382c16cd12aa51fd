"""`sespcl webhooks run`: delivers the outbox's status callbacks (schema.sql webhook_deliveries).

It keeps up to `concurrency` deliveries in flight: it leases due rows (each call's oldest
pending event only), POSTs each signed, decides what the answer means (domain/webhook_delivery.py)
and settles the results in batches, one transaction each. A settled batch may make a call's
next event due, so a settlement wakes the claim at once instead of at the next poll.

Killed, it leaves leased rows that are taken again once their lease has run out: delivery is at
least once (the same webhook-id every time, for the receiver to drop a repeat). Stopped
(SIGTERM), it claims nothing more, lets the tries in flight finish for a few seconds, and gives
back the leases of those that did not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from orchestrator.domain.errors import StoreError
from orchestrator.domain.webhook_delivery import (
    OutboxDelivery,
    Settlement,
    TryResult,
    Verdict,
    decide,
    signed_headers,
)
from orchestrator.services.periodic import every

log = structlog.get_logger(__name__)


class Outbox(Protocol):
    async def claim(self, limit: int, lease_s: float) -> list[OutboxDelivery]: ...

    async def settle(self, settlements: list[Settlement]) -> None: ...


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> TryResult: ...


@dataclass(frozen=True, kw_only=True)
class SenderSettings:
    concurrency: int = 200
    """Tries in flight at once."""
    batch: int = 200
    """Most rows one claim leases."""
    poll_s: float = 0.1
    """How often an idle sender looks for due rows."""
    lease_s: float = 60.0
    """How long a leased row stays this sender's: more than a try's 15 s, so only a sender that
    died (or a database that lost it) lets it go to another."""
    settle_every_s: float = 0.02
    stop_grace_s: float = 5.0
    """At a stop, how long tries in flight may still finish before their leases are given back."""
    stats_every_s: float = 60.0


class WebhookSender:
    def __init__(
        self,
        outbox: Outbox,
        poster: Poster,
        key: bytes,
        settings: SenderSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = outbox
        self._poster = poster
        self._key = key
        self._settings = settings
        self._clock = clock
        self._in_flight: dict[str, tuple[asyncio.Task[None], OutboxDelivery]] = {}
        self._settled: list[Settlement] = []
        self._stopping = asyncio.Event()
        self._settling_done = asyncio.Event()
        self._wake = asyncio.Event()
        self.counts: Counter[str] = Counter()
        """Deliveries settled by this process, by verdict (`pending`: to be tried again)."""

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        settler = asyncio.create_task(self._settle_loop())
        settler.add_done_callback(self._stop_if_crashed)
        stats = asyncio.create_task(
            every(
                self._settings.stats_every_s,
                self._log_stats,
                self._stopping,
                failure_event="webhooks.stats_failed",
            )
        )
        try:
            while not self._stopping.is_set():
                full = await self.fill()
                if not full:
                    await self._sleep_until_woken()
        finally:
            await self._finish_in_flight()
            self._settling_done.set()
            await stats
            await self._log_stats()
            await settler  # raises what crashed it, if anything did

    def _stop_if_crashed(self, settler: asyncio.Task[None]) -> None:
        """Without its settlements the sender would only lease and resend: it stops (the
        supervisor starts it again) rather than go on."""
        if not settler.cancelled() and (error := settler.exception()) is not None:
            log.error("webhooks.settling_crashed", error=repr(error))
            self.stop()

    async def fill(self) -> bool:
        """Lease what is due into the free slots; True when it filled them all (more may be due)."""
        room = self._settings.concurrency - len(self._in_flight)
        if room <= 0:
            return False
        wanted = min(room, self._settings.batch)
        try:
            claimed = await self._outbox.claim(wanted, self._settings.lease_s)
        except StoreError as exc:
            log.warning("webhooks.claim_failed", error=str(exc))
            return False
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery))
            self._in_flight[delivery.id] = (task, delivery)
            task.add_done_callback(self._forget(delivery.id))
        return len(claimed) == wanted

    def _forget(self, delivery_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            self._in_flight.pop(delivery_id, None)
            if not task.cancelled() and (error := task.exception()) is not None:
                # A bug: the row stays leased and is tried again once the lease runs out.
                log.error("webhook.deliver_crashed", webhook_id=delivery_id, error=repr(error))

        return forget

    async def _sleep_until_woken(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), self._settings.poll_s)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _deliver(self, delivery: OutboxDelivery) -> None:
        if delivery.stopped:
            self._settle(delivery, Settlement(delivery_id=delivery.id, verdict=Verdict.STOPPED))
            return
        headers = signed_headers(self._key, delivery.id, int(self._clock()), delivery.body)
        result = await self._poster.post(delivery.url, delivery.body, headers)
        decision = decide(result, tries=delivery.tries + 1, event_at=delivery.event_at)
        stop_url = delivery.url if decision.verdict is Verdict.STOPPED else None
        self._settle(
            delivery,
            Settlement(
                delivery_id=delivery.id,
                verdict=decision.verdict,
                result=result,
                next_try_at=decision.next_try_at,
                stop_url=stop_url,
            ),
        )

    def _settle(self, delivery: OutboxDelivery, settlement: Settlement) -> None:
        self._settled.append(settlement)
        self.counts[settlement.verdict.value] += 1
        result = settlement.result
        log.info(
            "webhook.try" if result is not None else "webhook.stopped",
            call_id=delivery.call_id,
            webhook_id=delivery.id,
            try_number=delivery.tries + 1 if result is not None else None,
            verdict=settlement.verdict.value,
            status_code=result.status_code if result else None,
            latency_ms=result.latency_ms if result else None,
            error=result.error if result else None,
            next_try_at=settlement.next_try_at.isoformat() if settlement.next_try_at else None,
        )

    async def _settle_loop(self) -> None:
        """Store what was settled every few milliseconds, one transaction a batch; a batch the
        database did not take is tried again (the leases keep its rows meanwhile)."""
        wait_s = self._settings.settle_every_s
        while True:
            if self._settled:
                wait_s = await self._flush(wait_s)
            if self._settling_done.is_set():
                if not self._settled:
                    return
                await asyncio.sleep(wait_s)
                continue
            try:
                await asyncio.wait_for(self._settling_done.wait(), wait_s)
            except TimeoutError:
                pass

    async def _flush(self, wait_s: float) -> float:
        batch, self._settled = self._settled, []
        try:
            await self._outbox.settle(batch)
        except StoreError as exc:
            self._settled[:0] = batch
            log.warning("webhooks.settle_failed", deliveries=len(batch), error=str(exc))
            if self._settling_done.is_set() and wait_s >= 1.0:
                # Stopping, and the database stays away: the leases run out and another sender
                # (or this one, started again) tries these once more.
                log.warning("webhooks.settlements_dropped", deliveries=len(self._settled))
                self._settled = []
            return min(1.0, wait_s * 2)
        self._wake.set()
        return self._settings.settle_every_s

    async def _finish_in_flight(self) -> None:
        if not self._in_flight:
            return
        tasks = [task for task, _ in self._in_flight.values()]
        _, unfinished = await asyncio.wait(tasks, timeout=self._settings.stop_grace_s)
        left = [delivery for task, delivery in self._in_flight.values() if task in unfinished]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for delivery in left:
            # Given back untried (the receiver may have had it: the same webhook-id comes again).
            self._settled.append(Settlement(delivery_id=delivery.id, verdict=Verdict.RETRY))
            log.info("webhook.released", call_id=delivery.call_id, webhook_id=delivery.id)

    async def _log_stats(self) -> None:
        log.info("webhooks.stats", in_flight=len(self._in_flight), **dict(self.counts))
