"""Carrier limits: how many new calls each trunk may take right now. Pure."""

from __future__ import annotations

from dataclasses import dataclass

CPS_WINDOW_S = 1.1
"""Calls started on a trunk are counted over this window to hold it to `cps`. A little over a
second, so the jitter between claim and INVITE cannot squeeze cps + 1 INVITEs into one second."""


@dataclass(frozen=True)
class TrunkLimits:
    name: str
    max_channels: int | None
    cps: float | None


def trunk_budget(limits: TrunkLimits, live: int, started_in_window: int, wanted: int) -> int:
    """New calls the trunk may start now: under max_channels live, and under cps per window."""
    budget = wanted
    if limits.max_channels is not None:
        budget = min(budget, limits.max_channels - live)
    if limits.cps is not None:
        budget = min(budget, cps_allowance(limits.cps) - started_in_window)
    return max(0, budget)


def cps_allowance(cps: float) -> int:
    """Calls allowed per `cps_window_s(cps)`: whole calls only, rounding down (never over)."""
    return max(1, int(cps))


def cps_window_s(cps: float | None) -> float:
    """How far back to count started calls for a trunk's cps."""
    if cps is None:
        return CPS_WINDOW_S
    return CPS_WINDOW_S if cps >= 1 else CPS_WINDOW_S / cps
