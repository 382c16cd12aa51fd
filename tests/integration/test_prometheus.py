"""A real Prometheus scrapes the running stack with the configuration `make up` wrote
(.stack/prometheus.yml): every process and node is a target, and PromQL returns the calls just
made, by trunk, status, node and outcome, with their timings, and where queued calls wait."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cli import carrier_trunk
from tests.integration.conftest import call_body, nanp_numbers, new_campaign, wait_final
from tests.integration.prometheus_server import Prometheus, running_prometheus

JOBS = {"sespcl-api", "sespcl-dispatcher", "sespcl-worker", "sespcl-webhooks", "sespcl-upkeep", "asterisk"}
ANSWERED_CALLS = 6
BUSY_CALLS = 3
PRESSING_CALLS = 2
PRESSED = "7"
FIRST_NAMES = [
    "Amara",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Esther",
    "Farid",
    "Greta",
    "Hiroshi",
    "Ines",
    "Jonas",
    "Kemal",
]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Prometheus]:
    config = Path(os.environ.get("SESPCL_STATE_DIR", ".stack")) / "prometheus.yml"
    assert config.is_file(), f"{config}: `make up` writes it"
    with running_prometheus(config) as server:
        yield server


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@dataclass(frozen=True)
class Placed:
    before: dict[str, float]
    calls: list[dict[str, Any]]


COUNTS = {
    "completed": 'sum(sespcl_calls_finished_total{trunk="demo",status="completed"})',
    "busy": 'sum(sespcl_calls_finished_total{trunk="busy",status="busy"})',
    "busy_attempts": 'sum(sespcl_call_attempts_total{trunk="busy",outcome="busy"})',
    "originates": "sum(sespcl_originate_latency_seconds_count)",
    "answers": 'sum(sespcl_answer_latency_seconds_count{trunk="demo"})',
    "durations": 'sum(sespcl_call_duration_seconds_count{trunk="demo"})',
    "sevens": f'sum(sespcl_digits_total{{digit="{PRESSED}"}})',
}


async def _every_target_up(prometheus: Prometheus, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every target of the configuration, once each has been scraped successfully."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        response = await client.get(f"{prometheus.url}/api/v1/targets", params={"state": "active"})
        targets: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
        if {t["labels"]["job"] for t in targets} == JOBS and all(t["health"] == "up" for t in targets):
            return targets
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(
                f"not every target is up: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in targets]}"
            )
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def pressing_far_end() -> Iterator[None]:
    """A callee who presses 7 two seconds into the answer."""
    with carrier_trunk("t-metrics-press7", "127.0.30.71", "dtmf", digit=PRESSED):
        yield


@pytest.fixture(scope="module")
async def placed(
    prometheus: Prometheus, client: httpx.AsyncClient, api: httpx.AsyncClient, pressing_far_end: None
) -> Placed:
    """The counters as Prometheus first scraped them, then calls placed and finished."""
    await _every_target_up(prometheus, client)
    before = {name: await prometheus.value(client, q) or 0.0 for name, q in COUNTS.items()}
    run = uuid.uuid4().hex[:6]
    total = ANSWERED_CALLS + BUSY_CALLS + PRESSING_CALLS
    numbers = nanp_numbers(total)

    async def place(i: int) -> dict[str, Any]:
        text = f"Hello {FIRST_NAMES[i]}, your parcel {run}-{i} arrives tomorrow between nine and noon."
        body = call_body(numbers[i], text, trunk="demo" if i < ANSWERED_CALLS else "busy")
        if i >= ANSWERED_CALLS + BUSY_CALLS:
            body.update(
                trunk="t-metrics-press7",
                gather={"num_digits": 1, "timeout_s": 4, "retries": 0},
                tts={
                    "text": f"Hello {FIRST_NAMES[i]}, press 7 to hear your parcel {run}-{i}'s delivery slot."
                },
            )
        response = await api.post("/v1/calls", json=body)
        assert response.status_code == 202, response.text
        return await wait_final(api, response.json()["id"], timeout=120)

    calls = await asyncio.gather(*(place(i) for i in range(total)))
    assert [c["status"] for c in calls] == ["completed"] * ANSWERED_CALLS + ["busy"] * BUSY_CALLS + [
        "completed"
    ] * PRESSING_CALLS
    assert [c["digits"] for c in calls[ANSWERED_CALLS + BUSY_CALLS :]] == [PRESSED] * PRESSING_CALLS
    return Placed(before, list(calls))


async def _grown(
    prometheus: Prometheus, client: httpx.AsyncClient, placed: Placed, name: str, by: int
) -> float:
    """The counter once it has grown by at least `by` since before the calls."""
    want = placed.before[name] + by
    result = await prometheus.wait_for(
        client, COUNTS[name], lambda r: bool(r) and float(r[0]["value"][1]) >= want, timeout=60
    )
    return float(result[0]["value"][1])


async def test_every_process_and_node_of_the_stack_is_scraped(
    prometheus: Prometheus, client: httpx.AsyncClient
) -> None:
    targets = await _every_target_up(prometheus, client)
    workers = [t for t in targets if t["labels"]["job"] == "sespcl-worker"]
    assert len(workers) == int(os.environ.get("SESPCL_WORKERS", "2"))
    nodes = await prometheus.query(client, "asterisk_channels_count")
    assert {r["metric"]["node"] for r in nodes} == {"n1", "n2"}


async def test_promql_returns_the_calls_just_made_by_trunk_and_status(
    prometheus: Prometheus, client: httpx.AsyncClient, placed: Placed
) -> None:
    assert (
        await _grown(prometheus, client, placed, "completed", ANSWERED_CALLS)
        >= placed.before["completed"] + 6
    )
    await _grown(prometheus, client, placed, "busy", BUSY_CALLS)
    await _grown(prometheus, client, placed, "busy_attempts", BUSY_CALLS)
    await _grown(prometheus, client, placed, "sevens", PRESSING_CALLS)
    by_node = await prometheus.query(client, 'sum by (node) (sespcl_call_attempts_total{trunk="demo"})')
    assert {r["metric"]["node"] for r in by_node} <= {"n1", "n2"} and by_node


async def test_timings_of_the_calls_are_histograms_that_make_sense(
    prometheus: Prometheus, client: httpx.AsyncClient, placed: Placed
) -> None:
    await _grown(prometheus, client, placed, "originates", ANSWERED_CALLS + BUSY_CALLS)
    await _grown(prometheus, client, placed, "answers", ANSWERED_CALLS)
    await _grown(prometheus, client, placed, "durations", ANSWERED_CALLS)
    # The prompt plays for seconds; an originate is acknowledged well within its ring time.
    mean_talk = await prometheus.value(
        client,
        'sum(sespcl_call_duration_seconds_sum{trunk="demo"})'
        ' / sum(sespcl_call_duration_seconds_count{trunk="demo"})',
    )
    assert mean_talk is not None and 1.0 < mean_talk < 60
    p99_originate = await prometheus.value(
        client, "histogram_quantile(0.99, sum by (le) (sespcl_originate_latency_seconds_bucket))"
    )
    assert p99_originate is not None and 0 < p99_originate <= 30


async def test_queued_calls_of_a_paused_campaign_show_as_held(
    prometheus: Prometheus, client: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    campaign = (await new_campaign(api))["id"]
    assert (await api.post(f"/v1/campaigns/{campaign}/pause")).status_code == 200
    rows = "\n".join(
        json.dumps({"to": number, "name": name, "day": "Thursday"})
        for number, name in zip(nanp_numbers(4), FIRST_NAMES)
    )
    try:
        held_before = await prometheus.value(client, 'sespcl_queue_depth{state="held"}') or 0.0
        upload = await api.post(
            f"/v1/campaigns/{campaign}/calls",
            content=rows.encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert upload.status_code == 202 and upload.json()["accepted"] == 4, upload.text
        await prometheus.wait_for(
            client,
            'sespcl_queue_depth{state="held"}',
            lambda r: bool(r) and float(r[0]["value"][1]) >= held_before + 4,
            timeout=60,
        )
    finally:
        assert (await api.post(f"/v1/campaigns/{campaign}/cancel")).status_code == 200


async def test_the_alert_rules_are_loaded(prometheus: Prometheus, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{prometheus.url}/api/v1/rules")
    groups = response.json()["data"]["groups"]
    alerts = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    assert {"SespclNodeDown", "SespclNoDispatcher"} <= alerts, alerts
