from datetime import UTC, datetime

import pytest

from orchestrator.domain.calling_hours import (
    CallingWindow,
    callee_zones,
    never_opens,
    next_opening,
    window_never_opens,
    zones_for_number,
)

NINE_TO_EIGHT = CallingWindow.parse("09:00", "20:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_zone_of_a_number() -> None:
    assert zones_for_number("+14155550123") == ("America/Los_Angeles",)
    assert zones_for_number("+442071838750") == ("Europe/London",)


def test_open_now_is_none() -> None:
    assert next_opening(at("2026-06-01T10:00:00-07:00"), ("America/Los_Angeles",), NINE_TO_EIGHT) is None


def test_before_opening_waits_for_nine_local() -> None:
    now = at("2026-06-01T06:30:00-07:00")
    assert next_opening(now, ("America/Los_Angeles",), NINE_TO_EIGHT) == at("2026-06-01T09:00:00-07:00")


def test_after_closing_waits_for_tomorrow() -> None:
    now = at("2026-06-01T20:00:00-07:00")  # the end is exclusive
    assert next_opening(now, ("America/Los_Angeles",), NINE_TO_EIGHT) == at("2026-06-02T09:00:00-07:00")


def test_daylight_saving_change_uses_local_nine() -> None:
    now = at("2026-03-08T01:00:00-08:00")  # US clocks go forward at 02:00 that day
    assert next_opening(now, ("America/Los_Angeles",), NINE_TO_EIGHT) == at("2026-03-08T09:00:00-07:00")


def test_window_across_midnight() -> None:
    night = CallingWindow.parse("20:00", "08:00")
    assert next_opening(at("2026-06-01T23:30:00+00:00"), ("UTC",), night) is None
    assert next_opening(at("2026-06-01T12:00:00+00:00"), ("UTC",), night) == at("2026-06-01T20:00:00+00:00")


def test_several_zones_must_all_be_inside() -> None:
    zones = ("America/New_York", "America/Los_Angeles")
    now = at("2026-06-01T10:00:00-04:00")  # 10:00 in New York, 07:00 in Los Angeles
    assert next_opening(now, zones, NINE_TO_EIGHT) == at("2026-06-01T09:00:00-07:00")


def test_no_common_instant_looks_again_later() -> None:
    zones = ("Pacific/Kiritimati", "Pacific/Pago_Pago")  # 25 hours apart
    narrow = CallingWindow.parse("09:00", "10:00")
    now = at("2026-06-01T00:00:00+00:00")
    later = next_opening(now, zones, narrow)
    assert later is not None and later > now


def test_a_window_narrower_than_the_zones_are_apart_never_opens() -> None:
    russia = zones_for_number("+79123456789")  # a mobile: any of the country's zones
    assert len(russia) > 10
    office = CallingWindow.parse("09:00", "17:00")
    now = at("2026-06-01T00:00:00+00:00")
    assert never_opens(now, russia, office)
    assert not never_opens(now, ("Europe/Moscow",), office)
    assert not never_opens(now, russia, CallingWindow.parse("00:00", "23:59"))
    assert not never_opens(now, ("America/New_York", "America/Los_Angeles"), office)
    assert "give the callee's zone as tz" in window_never_opens(office, russia)
    with pytest.raises(ValueError, match="never open"):
        callee_zones("+79123456789", None, office, now)
    assert callee_zones("+79123456789", "Europe/Moscow", office, now) == ("Europe/Moscow",)


@pytest.mark.parametrize(("start", "end"), [("9:00", "20:00"), ("09:00", "24:00"), ("10:00", "10:00")])
def test_bad_windows(start: str, end: str) -> None:
    with pytest.raises(ValueError):
        CallingWindow.parse(start, end)
