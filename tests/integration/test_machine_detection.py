"""Answering-machine detection end to end: calls through the API to far ends that speak (SIPp
streaming espeak-ng audio): a person who says a few words and waits, and a voicemail box with a
long greeting, a 1 kHz beep, then silence. The node's [sespcl-amd] decides; the call shows it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.cli import speaking_carriers
from tests.integration.conftest import call_body, nanp_numbers, wait_events, wait_final

PER_KIND = 3
VOICEMAIL_TEXT = "Hi, this is the Riverside dental clinic: please call us back about your appointment."


@pytest.fixture(scope="module")
def far_ends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with speaking_carriers(
        tmp_path_factory.mktemp("far-ends"),
        human=("t-human", "127.0.30.41"),
        voicemail=("t-voicemail", "127.0.30.42"),
    ):
        yield


async def _place(api: httpx.AsyncClient, to: str, trunk: str, detection: str, run: str) -> dict[str, Any]:
    body = call_body(
        to=to,
        text=f"Your prescription is ready for pickup at the pharmacy on Elm Street ({run}).",
        trunk=trunk,
        ring_timeout_s=20,
        machine_detection=detection,
        # the voicemail message is left after the greeting's end: only with detect_message_end
        **({"voicemail": {"tts": {"text": VOICEMAIL_TEXT}}} if detection == "detect_message_end" else {}),
        metadata={"test": "machine-detection", "trunk": trunk},
    )
    response = await api.post("/v1/calls", json=body)
    assert response.status_code == 202, response.text
    return await wait_final(api, response.json()["id"], timeout=150)


@pytest.fixture(scope="module")
async def placed(api: httpx.AsyncClient, far_ends: None) -> dict[str, list[dict[str, Any]]]:
    """Every call at once: PER_KIND to each far end with detect_message_end, one "enable" call
    to the voicemail box."""
    run = uuid.uuid4().hex[:8]
    numbers = iter(nanp_numbers(2 * PER_KIND + 1))
    plan = (
        [("human", "t-human", "detect_message_end")] * PER_KIND
        + [("voicemail", "t-voicemail", "detect_message_end")] * PER_KIND
        + [("voicemail-enable", "t-voicemail", "enable")]
    )
    calls = await asyncio.gather(*(_place(api, next(numbers), trunk, how, run) for _, trunk, how in plan))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for (label, _, _), call in zip(plan, calls, strict=True):
        grouped.setdefault(label, []).append(call)
    return grouped


async def _machine_event(api: httpx.AsyncClient, call: dict[str, Any]) -> dict[str, Any]:
    """The node's SespclMachine report, as the call's events show it."""
    events = await wait_events(api, call["id"], call["status"], timeout=30)
    found = [
        e
        for e in events
        if "SespclMachine" in e["type"] or e.get("data", {}).get("UserEvent") == "SespclMachine"
    ]
    assert len(found) == 1, events
    return found[0]


async def test_a_person_is_human(api: httpx.AsyncClient, placed: dict[str, list[dict[str, Any]]]) -> None:
    for call in placed["human"]:
        assert call["status"] == "completed", call
        assert call["answered_by"] == "human", call
        event = await _machine_event(api, call)
        assert event["data"].get("Status") == "HUMAN", event


async def test_a_voicemail_box_is_a_machine_whose_beep_was_heard(
    api: httpx.AsyncClient, placed: dict[str, list[dict[str, Any]]]
) -> None:
    for call in placed["voicemail"]:
        assert call["status"] == "completed", call
        assert call["answered_by"] == "machine_end_beep", call
        event = await _machine_event(api, call)
        assert event["data"].get("Status") == "MACHINE" and event["data"].get("End") == "beep", event


async def test_enable_reports_the_machine_at_once(
    api: httpx.AsyncClient, placed: dict[str, list[dict[str, Any]]]
) -> None:
    (call,) = placed["voicemail-enable"]
    assert call["status"] == "completed", call
    assert call["answered_by"] == "machine_start", call
    event = await _machine_event(api, call)
    assert event["data"].get("End", "") == "", event
