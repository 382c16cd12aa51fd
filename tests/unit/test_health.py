"""/health: one run of the checks at a time, kept a second; no error text; status for anyone."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.api.health import present
from orchestrator.asterisk.probe import ami_banner
from orchestrator.domain.health import HealthSnapshot, NodeAddress
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.services.health import HealthChecks
from orchestrator.services.keys import Authenticator
from orchestrator.services.single_flight import SingleFlight
from tests.unit.api_fakes import Stub, api_deps


class Store:
    def __init__(self, fail: Exception | None = None) -> None:
        self.snapshots = 0
        self.fail = fail

    async def health_snapshot(self, silent_after_s: float) -> HealthSnapshot:
        self.snapshots += 1
        await asyncio.sleep(0.05)
        if self.fail is not None:
            raise self.fail
        # A node nothing listens on: the asterisk check fails without a farm.
        return HealthSnapshot(
            dispatchers=1, nodes=(NodeAddress(name="n1", ami_host="127.0.0.1", ami_port=1, drained=False),)
        )


class Queues:
    def ping(self) -> bool:
        return True

    def worker_count(self) -> int:
        return 2


def _checks(store: Store) -> HealthChecks:
    return HealthChecks(store, Queues(), banner=ami_banner, cache_s=1.0)


async def test_a_crowd_of_probes_runs_the_checks_once() -> None:
    store = Store()
    monitor = _checks(store)
    answers = await asyncio.gather(*(monitor.report() for _ in range(20)))
    assert store.snapshots == 1 and monitor.runs == 1
    assert len({id(report) for report in answers}) == 1
    status, body = present(answers[0])
    # No node answers: 503, as before keys; the rest is reported.
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["asterisk"] == {"ok": False, "error": "no Asterisk node answers"}
    assert body["checks"]["postgres"]["ok"] and body["checks"]["dispatcher"]["running"] == 1


async def test_error_text_is_never_shown() -> None:
    secret = "connection to server at 10.1.2.3 failed: password authentication failed for user sespcl"
    monitor = _checks(Store(fail=OSError(secret)))
    status, body = present(await monitor.report())
    assert status == 503
    assert "10.1.2.3" not in str(body) and "password" not in str(body)
    assert body["checks"]["postgres"]["error"] == "postgres check failed (OSError); see the API log"
    assert body["checks"]["dispatcher"]["error"] == "cannot read the dispatchers: PostgreSQL does not answer"


async def test_status_for_anyone_checks_for_metrics_read() -> None:
    keys = Authenticator(
        Stub(AssertionError),
        bootstrap_key="b" * 32,
        bootstrap=Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None),
        cache_s=2.0,
    )
    monitor = _checks(Store())
    app = create_app(api_deps(AssertionError, keys=keys, health=monitor))
    async with TestClient(TestServer(app)) as client:
        anonymous = await client.get("/health")
        assert anonymous.status == 503 and await anonymous.json() == {"status": "unavailable"}
        detailed = await client.get("/health", headers={"Authorization": "Bearer " + "b" * 32})
        assert detailed.status == 503
        assert {"status", "checks", "checked_at"} <= set(await detailed.json())
        wrong = await client.get("/health", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert monitor.runs == 1  # the three answered from one run


async def test_single_flight_keeps_a_value_its_time_and_not_an_error() -> None:
    now = [0.0]
    flight: SingleFlight[str, int] = SingleFlight(1.0, clock=lambda: now[0])
    runs = 0

    async def compute() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        return runs

    assert list(await asyncio.gather(flight.get("k", compute), flight.get("k", compute))) == [1, 1]
    now[0] = 0.9
    assert await flight.get("k", compute) == 1
    now[0] = 1.0
    assert await flight.get("k", compute) == 2

    async def broken() -> int:
        raise RuntimeError("down")

    now[0] = 5.0
    for _ in range(2):  # not kept: the next caller tries again
        try:
            await flight.get("k", broken)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the error was swallowed")
    assert await flight.get("k", compute) == 3


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight(1.0)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "done"

    impatient = asyncio.ensure_future(flight.get("k", slow))
    patient = asyncio.ensure_future(flight.get("k", slow))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == "done"
