"""bench-farm's own arithmetic: the numbers its campaigns dial, and the steady part of a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import phonenumbers

from bench.farm_campaign import EXCHANGES, number, steady_window


def test_a_million_calls_get_distinct_valid_numbers() -> None:
    """A campaign takes a number once (calls_campaign_to), and the API refuses an invalid one."""
    indices = [
        *range(0, 20_000, 7),
        *range(10_000 * len(EXCHANGES) - 50, 10_000 * len(EXCHANGES) + 50),
        999_999,
    ]
    numbers = [number(i) for i in indices]
    assert len(set(numbers)) == len(numbers)
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(n)) for n in numbers)
    assert len({number(i) for i in range(0, 1_000_000, 997)}) == len(range(0, 1_000_000, 997))


def test_the_steady_part_leaves_out_the_ramp_and_the_stragglers() -> None:
    start = datetime(2026, 12, 7, tzinfo=UTC)
    ends = [start + timedelta(seconds=i / 100) for i in range(1000)]  # 100 a second
    low, high = steady_window(ends)
    assert (low, high) == (ends[100], ends[899])
    assert steady_window(ends[:9]) == (None, None)
