"""The campaign report's chart (matplotlib, Agg: no screen needed): three panels under a title
that names the campaign and its totals. Calls ended per minute, stacked by outcome, across the
top; the answer rate by hour of day and the keys pressed side by side below."""

from __future__ import annotations

from datetime import timedelta
from typing import BinaryIO

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from orchestrator.domain.call import CallStatus
from orchestrator.domain.report import NO_KEY, CampaignReport, HourlyAnswers, KeyBar, OutcomeTimeline

SIZE_INCHES = (14.0, 9.0)
DPI = 100  # 1400 x 900 pixels
OUTCOME_COLOURS = {
    CallStatus.COMPLETED: "#2e7d32",
    CallStatus.BUSY: "#ef6c00",
    CallStatus.NO_ANSWER: "#f9a825",
    CallStatus.FAILED: "#c62828",
    CallStatus.CANCELED: "#78909c",
}
RATE_COLOUR = "#1565c0"
KEY_COLOUR = "#6a1b9a"
NO_KEY_COLOUR = "#b0bec5"
HEADROOM = 1.15  # room above the tallest bar for its label
LEGEND_HEADROOM = 1.3  # and for the outcomes' legend, across the top of the timeline


def render_png(report: CampaignReport, out: BinaryIO) -> None:
    draw(report).savefig(out, format="png")


def draw(report: CampaignReport) -> Figure:
    """The chart on a figure of its own, drawn by Agg: no pyplot, whose global state and
    backend choice are for interactive sessions."""
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=(1.1, 1.0))
    figure.suptitle(report.title, fontsize=13)
    # Concise date ticks: "10:55", "11:00", … with the day written once, at the axis' end.
    with matplotlib.rc_context({"date.converter": "concise"}):
        _outcomes_per_minute(figure.add_subplot(grid[0, :]), report.timeline)
    _answer_rate_by_hour(figure.add_subplot(grid[1, 0]), report.hourly)
    _keys_pressed(figure.add_subplot(grid[1, 1]), report.keys)
    return figure


def _outcomes_per_minute(ax: Axes, timeline: OutcomeTimeline) -> None:
    ax.set_title("Calls ended per minute, by outcome")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("calls / minute")
    if not timeline.minutes:
        _nothing_yet(ax, "no call has ended yet")
        return
    # datetime64 holds no zone: the minutes are UTC already, as is the axis (rcParams' default).
    starts = [m.replace(tzinfo=None) for m in timeline.minutes]
    edges = np.array([*starts, starts[-1] + timedelta(minutes=1)], dtype="datetime64[m]")
    bottom = np.zeros(len(timeline.minutes))
    for status, calls in timeline.calls.items():
        top = bottom + np.asarray(calls)
        label = f"{status.value} ({sum(calls):,})"
        ax.stairs(top, edges, baseline=bottom, fill=True, color=OUTCOME_COLOURS[status], label=label)
        bottom = top
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, timeline.peak * LEGEND_HEADROOM)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", ncols=len(timeline.calls))


def _answer_rate_by_hour(ax: Axes, hourly: HourlyAnswers) -> None:
    ax.set_title("Answer rate by hour of day (UTC); above each bar: attempts")
    ax.set_xlabel("hour the attempt started (UTC)")
    ax.set_ylabel("attempts answered")
    hours = range(len(hourly.attempts))
    ax.set_xticks(hours, [f"{h:02d}" for h in hours], fontsize=8)
    ax.set_xlim(-0.6, len(hourly.attempts) - 0.4)
    if not any(hourly.attempts):
        _nothing_yet(ax, "no attempt has ended yet", keep_x_ticks=True)
        return
    rates = [rate or 0.0 for rate in hourly.rates]
    bars = ax.bar(hours, rates, color=RATE_COLOUR, width=0.8)
    ax.bar_label(bars, [f"{n:,}" if n else "" for n in hourly.attempts], padding=2, fontsize=7)
    ax.set_ylim(0, HEADROOM)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="y", alpha=0.3)


def _keys_pressed(ax: Axes, keys: tuple[KeyBar, ...]) -> None:
    ax.set_title("Keys pressed on answered calls")
    ax.set_xlabel("calls")
    if not keys:
        _nothing_yet(ax, "no call answered yet")
        return
    rows = range(len(keys))
    colours = [NO_KEY_COLOUR if bar.label == NO_KEY else KEY_COLOUR for bar in keys]
    bars = ax.barh(rows, [bar.calls for bar in keys], color=colours)
    ax.set_yticks(rows, [bar.label for bar in keys])
    ax.invert_yaxis()  # most pressed on top
    ax.bar_label(bars, [f"{bar.calls:,}" for bar in keys], padding=3, fontsize=8)
    ax.set_xlim(0, max(bar.calls for bar in keys) * HEADROOM)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", alpha=0.3)


def _nothing_yet(ax: Axes, why: str, *, keep_x_ticks: bool = False) -> None:
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="grey", fontsize=12)
    ax.set_yticks([])
    if not keep_x_ticks:
        ax.set_xticks([])
