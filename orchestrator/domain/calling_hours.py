"""Calling hours in the callee's time zone. Pure: the time is passed in.

A window such as 09:00-20:00 is local to the number. When the number's country spans several
zones (phonenumbers cannot always tell which), the call may only go out when it is inside the
window in every one of them: outside calling hours a call waits, it never dials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_LOOKAHEAD = timedelta(days=2)
_RECHECK = timedelta(hours=1)


@dataclass(frozen=True)
class CallingWindow:
    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> CallingWindow:
        for value in (start, end):
            if not _HHMM.fullmatch(value):
                raise ValueError(f"{value!r} is not a time of day as HH:MM (24 h)")
        window = cls(time.fromisoformat(start), time.fromisoformat(end))
        if window.start == window.end:
            raise ValueError("the window is empty: start and end are the same")
        return window

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # e.g. 20:00-08:00, across midnight


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder
        raise ValueError(f"unknown time zone {name!r}") from exc


def zones_for_number(e164: str) -> tuple[str, ...]:
    """The IANA zones phonenumbers gives for a number; UTC when it knows none."""
    number = phonenumbers.parse(e164, None)
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown")
    return zones or ("UTC",)


def _open_everywhere(at: datetime, zones: tuple[str, ...], window: CallingWindow) -> bool:
    return all(window.contains(at.astimezone(zone(z)).time().replace(tzinfo=None)) for z in zones)


def next_opening(now: datetime, zones: tuple[str, ...], window: CallingWindow) -> datetime | None:
    """None when the call may be dialed now; else the earliest instant when it may, or a time to
    look again when no instant in the next two days is inside the window in all its zones."""
    if _open_everywhere(now, zones, window):
        return None
    return _first_opening(now, zones, window) or now + _RECHECK


def never_opens(now: datetime, zones: tuple[str, ...], window: CallingWindow) -> bool:
    """True when the window is never open in all the zones at once: the zones are further apart
    than the window is long (a 09:00-17:00 window across Russia's eleven zones, say). A call so
    limited could never be dialed, so it is refused when it is accepted."""
    return _never_opens_on(now.date(), zones, window)


def callee_zones(to: str, tz: str | None, window: CallingWindow, now: datetime) -> tuple[str, ...]:
    """The zones a call's calling hours apply in: an explicit `tz`, else the number's own. A
    ValueError, saying what to do, when the window is never open in all of them at once."""
    zones = (tz,) if tz else zones_for_number(to)
    if never_opens(now, zones, window):
        raise ValueError(window_never_opens(window, zones))
    return zones


def window_never_opens(window: CallingWindow, zones: tuple[str, ...]) -> str:
    """The error for a window that `never_opens`."""
    shown = ", ".join(zones[:3]) + (f" and {len(zones) - 3} more" if len(zones) > 3 else "")
    return (
        f"the calling window {window.start:%H:%M}-{window.end:%H:%M} is never open in all of the "
        f"number's time zones at once ({shown}): give the callee's zone as tz"
    )


@lru_cache(maxsize=1024)
def _never_opens_on(day: date, zones: tuple[str, ...], window: CallingWindow) -> bool:
    # Whether an opening exists depends on the zones' offsets, not the hour: any instant of the
    # day will do, and the day keys the cache (offsets move with daylight saving).
    noon = datetime.combine(day, time(12), tzinfo=UTC)
    return not _open_everywhere(noon, zones, window) and _first_opening(noon, zones, window) is None


def _first_opening(now: datetime, zones: tuple[str, ...], window: CallingWindow) -> datetime | None:
    """The first instant within two days when the window opens in all the zones. An opening of
    all of them is always one zone's own opening (the latest to open), so only those are tried."""
    candidates = []
    for name in zones:
        local = now.astimezone(zone(name))
        for days in range(3):
            day = (local + timedelta(days=days)).date()
            opening = datetime.combine(day, window.start, tzinfo=zone(name))
            if now < opening <= now + _LOOKAHEAD:
                candidates.append(opening)
    for candidate in sorted(candidates):
        if _open_everywhere(candidate, zones, window):
            return candidate
    return None


@dataclass(frozen=True)
class Dial:
    pass


@dataclass(frozen=True)
class Defer:
    until: datetime


@dataclass(frozen=True)
class Expire:
    pass


def dial_decision(
    now: datetime,
    expires_at: datetime | None,
    window: CallingWindow | None,
    zones: tuple[str, ...] | None,
) -> Dial | Defer | Expire:
    """Just before dialing: too late, not yet (outside calling hours), or go."""
    if expires_at is not None and expires_at <= now:
        return Expire()
    if window is not None:
        opening = next_opening(now, zones or ("UTC",), window)
        if opening is not None:
            if expires_at is not None and opening >= expires_at:
                return Expire()
            return Defer(opening)
    return Dial()
