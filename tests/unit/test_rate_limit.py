"""Requests a second per key: the GCRA's arithmetic, and the limiter failing open."""

from __future__ import annotations

import time

from orchestrator.domain.rate import MICROS, Gcra
from orchestrator.rate_limit import connect


def _run(gcra: Gcra, times: list[float]) -> list[int]:
    """The Retry-After of each request at these times (s; 0: allowed), the state carried from
    one to the next as the Lua script carries it in Redis."""
    tat: int | None = None
    answers = []
    for now in times:
        decision = gcra.decide(tat, round(now * MICROS))
        tat = decision.tat_us
        answers.append(decision.retry_after_s)
    return answers


def test_a_burst_of_one_second_then_the_rate() -> None:
    assert (Gcra(2).interval_us, Gcra(2).tolerance_us) == (500_000, 500_000)
    # 2/s: two at once pass, the third waits; half a second later one more passes.
    assert _run(Gcra(2), [10.0, 10.0, 10.0, 10.5, 10.5]) == [0, 0, 1, 0, 1]
    # 50/s: fifty at once, not fifty-one.
    answers = _run(Gcra(50), [0.0] * 51)
    assert answers[:50] == [0] * 50 and answers[50] == 1


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    # 0.25/s: one request, then the next one is 4 s away.
    assert _run(Gcra(0.25), [0.0, 0.0, 3.5, 4.0]) == [0, 4, 1, 0]


def test_a_quiet_key_starts_afresh() -> None:
    gcra = Gcra(2)
    assert _run(gcra, [0.0, 0.0, 0.0, 60.0, 60.0, 60.0]) == [0, 0, 1, 0, 0, 1]


def test_refused_requests_do_not_use_up_the_rate() -> None:
    # Hammering while refused does not push the next allowed request further away.
    assert _run(Gcra(1), [0.0] + [0.1 * i for i in range(1, 10)] + [1.0]) == [0] + [1] * 9 + [0]


async def test_without_redis_requests_go_through() -> None:
    """Fail open: nothing listens on port 1. The limiter says "go" at once (no retries), and
    does not ask Redis again for a second (a hung Redis would cost every request its timeout)."""
    limiter = connect("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        started = time.monotonic()
        assert await limiter.retry_after("ops", 2.0) is None
        assert time.monotonic() - started < 1.0
        skip_until = limiter._skip_until
        assert skip_until > 0
        assert await limiter.retry_after("ops", 2.0) is None
        assert limiter._skip_until == skip_until  # the second did not try Redis
    finally:
        await limiter.close()


def test_odd_rates_keep_whole_microseconds() -> None:
    assert (Gcra(3).interval_us, Gcra(3).tolerance_us) == (333_333, 666_666)
    assert _run(Gcra(3), [0.0] * 4) == [0, 0, 0, 1]
    assert (Gcra(0.5).interval_us, Gcra(0.5).tolerance_us) == (2_000_000, 0)
