"""A campaign's cancel answers at once; its queued calls are canceled afterwards, a batch at a
time, by the dispatcher's sweep (services/dispatch/cancels.py), and the campaign shows how far."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.api.presenters import campaign_json
from orchestrator.domain.campaign import CampaignStatus, CancelProgress
from orchestrator.domain.keys import BOOTSTRAP, Principal, Scope
from orchestrator.services.campaigns import CampaignService
from orchestrator.services.dispatch.cancels import CampaignCancelSweep
from orchestrator.services.keys import Authenticator
from tests.unit.api_fakes import OneTrunk, api_deps
from tests.unit.cancel_fakes import FakeCampaignCancels

KEY = "k" * 32


def _row(status: str) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "id": uuid.uuid4(),
        "name": "outage",
        "status": status,
        "trunk": "demo",
        "from_number": None,
        "tts_template": "Power is back.",
        "tts_voice": "en-us",
        "ring_timeout_s": 30,
        "cps": None,
        "created_at": now,
        "updated_at": now,
    }


def test_only_a_canceled_campaign_has_a_cancel_progress() -> None:
    counts = {"queued": 7, "canceled": 3, "completed": 1}
    assert CancelProgress.of("active", counts) is None
    assert CancelProgress.of("paused", counts) is None
    progress = CancelProgress.of("canceled", counts)
    assert progress == CancelProgress(queued_left=7) and not progress.done
    assert CancelProgress.of("canceled", {"canceled": 10}) == CancelProgress(queued_left=0)
    assert CancelProgress(queued_left=0).done


def test_the_campaign_shows_how_far_its_cancel_went() -> None:
    shown = campaign_json(_row("canceled"), {"queued": 40, "canceled": 60}, 0.0)
    assert shown["cancel"] == {"queued_left": 40, "done": False}
    finished = campaign_json(_row("canceled"), {"canceled": 100}, 0.0)
    assert finished["cancel"] == {"queued_left": 0, "done": True}
    assert campaign_json(_row("paused"), {"queued": 40}, 0.0)["cancel"] is None
    assert "cancel" not in campaign_json(_row("canceled"))  # a listed campaign has no counts


async def test_a_pass_cancels_every_queued_call_a_batch_at_a_time_walking_on() -> None:
    campaign = uuid.uuid4()
    store = FakeCampaignCancels({campaign: 23})
    first_ten = [call for _, call in store.queued[campaign][:10]]
    sweep = CampaignCancelSweep(store, batch=10, stopped=lambda: False)
    assert await sweep.step() == 23
    assert store.queued[campaign] == [] and len(set(store.canceled)) == 23
    assert store.canceled[:10] == first_ten
    # Each batch goes on from where the last one stopped; the fourth finds nothing left.
    positions = [after for _, after in store.batches]
    assert positions[0] is None and len(positions) == 4
    assert all(a is not None and b is not None and a < b for a, b in zip(positions[1:], positions[2:]))
    assert await sweep.step() == 0 and len(store.batches) == 4  # nothing left: no batch at all


async def test_calls_a_claim_holds_are_skipped_and_taken_by_a_later_pass() -> None:
    campaign, other = uuid.uuid4(), uuid.uuid4()
    store = FakeCampaignCancels({campaign: 5, other: 2})
    held = store.queued[campaign][1][1]
    store.locked.add(held)
    sweep = CampaignCancelSweep(store, batch=2, stopped=lambda: False)
    assert await sweep.step() == 6
    assert [call for _, call in store.queued[campaign]] == [held] and store.queued[other] == []
    store.locked.clear()  # the claim ended it or let it go
    assert await sweep.step() == 1 and store.canceled[-1] == held


async def test_a_stopping_dispatcher_leaves_the_rest_to_the_next_pass() -> None:
    campaign = uuid.uuid4()
    store = FakeCampaignCancels({campaign: 10})
    sweep = CampaignCancelSweep(store, batch=3, stopped=lambda: len(store.batches) >= 2)
    assert await sweep.step() == 6 and len(store.queued[campaign]) == 4
    assert await CampaignCancelSweep(store, batch=3, stopped=lambda: False).step() == 4
    assert store.queued[campaign] == []


class Campaigns:
    """A campaign of 1,000 queued calls and 2 canceled: its status is all a cancel changes."""

    def __init__(self) -> None:
        self.row = _row("active")
        self.changes: list[CampaignStatus] = []

    async def get(self, campaign_id: uuid.UUID) -> dict[str, Any]:
        return self.row

    async def progress(self, campaign_id: uuid.UUID) -> tuple[dict[str, int], float]:
        return {"queued": 1000, "canceled": 2}, 0.0

    async def renders(self, campaign_id: uuid.UUID) -> tuple[int, int]:
        return 3, 3

    async def set_status(self, campaign_id: uuid.UUID, status: CampaignStatus) -> dict[str, Any]:
        self.changes.append(status)
        self.row = self.row | {"status": status.value}
        return self.row


class NoKeys:
    async def by_id(self, key_id: str) -> dict[str, Any] | None:
        return None

    async def touch(self, key_id: str) -> None:
        return None


async def test_the_cancel_answers_with_what_is_done_and_what_the_background_has_left() -> None:
    store = Campaigns()
    service = CampaignService(
        cast(Any, store),
        OneTrunk(),
        cast(Any, None),
        engine="espeak",
        default_voice="en-us",
        voices=lambda: {"en-us"},
    )
    bootstrap = Principal(BOOTSTRAP, frozenset({Scope.ADMIN}), None)
    deps = api_deps(
        lambda name: AssertionError(name),
        keys=Authenticator(NoKeys(), bootstrap_key=KEY, bootstrap=bootstrap, cache_s=2.0),
        campaigns=service,
    )
    async with TestClient(TestServer(create_app(deps))) as client:
        answer = await client.post(
            f"/v1/campaigns/{store.row['id']}/cancel", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert answer.status == 200
        body = await answer.json()
    assert store.changes == [CampaignStatus.CANCELED]
    assert body["status"] == "canceled" and body["canceled_calls"] == 2
    assert body["cancel"] == {"queued_left": 1000, "done": False}
