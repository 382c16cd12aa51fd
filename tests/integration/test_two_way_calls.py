"""Calls that answer back, end to end through each driver: far ends (SIPp) that press a key
(RFC 4733) while the prompt plays; an appointment reminder confirmed with 1 or stopped with 9
(the number lands on the do-not-call list during the call, and the next call to it is refused);
a survey routed into the operator's sespcl-custom-survey context, whose hook result shows on the
call; a gather that hears nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.cli import carrier_trunk
from tests.integration.conftest import call_body, nanp_numbers, wait_events, wait_final

DNC_REASON = "number is on the do-not-call list"
PATIENTS = ["Maria Lopez", "Tom Becker", "Aiko Tanaka", "Olu Adeyemi", "Sven Olsen", "Priya Nair"]


@pytest.fixture(scope="module")
def far_ends() -> Iterator[None]:
    """A callee who presses 1, one who presses 9 and one who presses 4, 2 s into the answer."""
    with (
        carrier_trunk("t-press1", "127.0.30.51", "dtmf", digit="1"),
        carrier_trunk("t-press9", "127.0.30.52", "dtmf", digit="9"),
        carrier_trunk("t-press4", "127.0.30.53", "dtmf", digit="4"),
    ):
        yield


@pytest.fixture
async def listed_numbers(db: psycopg.Connection[dict[str, Any]]) -> AsyncIterator[list[str]]:
    """Numbers a test may put on the do-not-call list, taken off again afterwards."""
    numbers: list[str] = []
    yield numbers
    db.execute("DELETE FROM dnc WHERE number = ANY(%s)", (numbers,))


def _reminder(to: str, trunk: str, patient: str) -> dict[str, Any]:
    first = patient.split()[0]
    return call_body(
        to=to,
        trunk=trunk,
        text=f"Hello {patient}, this is Lakeside Clinic: your appointment is on Tuesday at 9:30. "
        "Press 1 to confirm, or 9 if you do not want these calls.",
        gather={"num_digits": 1, "timeout_s": 4, "finish_on_key": "#", "retries": 1},
        on_digits={
            "1": {"tts": {"text": f"Thank you {first}, your appointment is confirmed."}},
            "9": {"action": "dnc", "tts": {"text": "You will not be called again. Goodbye."}},
        },
        metadata={"patient": patient},
    )


async def _place(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/calls", json=body)
    assert response.status_code == 202, response.text
    return await wait_final(api, response.json()["id"], timeout=120)


async def test_press_1_confirms_and_press_9_opts_out_during_the_call(
    api: httpx.AsyncClient, farm_driver: str, far_ends: None, listed_numbers: list[str]
) -> None:
    numbers = nanp_numbers(len(PATIENTS))
    trunks = ["t-press1"] * 4 + ["t-press9"] * 2
    calls = await asyncio.gather(
        *(_place(api, _reminder(n, t, p)) for n, t, p in zip(numbers, trunks, PATIENTS, strict=True))
    )
    opted_out = numbers[4:]
    listed_numbers.extend(opted_out)
    for call, trunk in zip(calls, trunks, strict=True):
        pressed = trunk[-1]
        assert call["status"] == "completed", call
        assert call["digits"] == pressed, call
        events = await wait_events(api, call["id"], "completed", and_types=("digits",))
        [digits] = [e for e in events if e["type"] == "digits"]
        assert digits["data"]["digits"] == pressed
        assert digits["data"].get("dnc", False) is (pressed == "9")
        # the digits came before the end, in the call's story
        completed = next(e for e in events if e["type"] == "status" and e["data"]["status"] == "completed")
        assert digits["at"] < completed["at"]
    # On the list from the moment the digit was stored: the next call is refused at once.
    for number in opted_out:
        again = await api.post("/v1/calls", json=_reminder(number, "t-press1", "Sven Olsen"))
        assert again.status_code == 202
        call = (await api.get(f"/v1/calls/{again.json()['id']}")).json()
        assert call["status"] == "canceled" and call["status_reason"] == DNC_REASON, call
    confirmed = numbers[:4]
    for number in confirmed:
        probe = await api.post("/v1/calls", json=call_body(to=number, not_before="2099-01-01T00:00:00Z"))
        call = (await api.get(f"/v1/calls/{probe.json()['id']}")).json()
        assert call["status"] == "queued", "a confirmed patient is not on the list"
        assert (await api.post(f"/v1/calls/{call['id']}/cancel")).status_code == 200


async def test_the_survey_context_reports_its_rating_through_the_hook(
    api: httpx.AsyncClient, farm_driver: str, far_ends: None
) -> None:
    run = uuid.uuid4().hex[:6]
    bodies = [
        call_body(
            to=number,
            trunk="t-press4",
            text=f"Hello {name}, thank you for visiting Harbor Bank ({run}). "
            "How did we do? Press 1 for poor, up to 5 for excellent.",
            dialplan={"context": "sespcl-custom-survey"},
        )
        for number, name in zip(nanp_numbers(3), PATIENTS, strict=False)
    ]
    calls = await asyncio.gather(*(_place(api, body) for body in bodies))
    for call in calls:
        assert call["status"] == "completed", call
        assert call["hooks"] == {"rating": "4"}, call
        assert call["digits"] is None, "the operator's context read the key, not the gather"
        events = await wait_events(api, call["id"], "completed", and_types=("hook",))
        assert [e["data"] for e in events if e["type"] == "hook"] == [{"name": "rating", "value": "4"}]


async def test_a_gather_that_hears_nothing_completes_without_digits(
    api: httpx.AsyncClient, farm_driver: str
) -> None:
    """The demo carrier answers and stays silent: the prompt plays twice (one retry), then the
    call ends with no digits."""
    body = call_body(
        to=nanp_numbers(1)[0],
        text="This is a test of the outage line. Press 1 if your power is back.",
        gather={"num_digits": 1, "timeout_s": 1, "retries": 1},
    )
    call = await _place(api, body)
    assert call["status"] == "completed" and call["digits"] is None, call
    events = await wait_events(api, call["id"], "completed")
    assert not [e for e in events if e["type"] == "digits"]
