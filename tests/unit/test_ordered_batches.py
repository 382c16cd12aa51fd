"""Transitions are stored in batches; a batch that failed to store comes back first, in order."""

from __future__ import annotations

import asyncio

from orchestrator.services.batches import OrderedBatches


async def _take(batches: OrderedBatches[int]) -> list[int]:
    return await batches.take(wait_s=0.01, gather_s=0)


def test_batches_keep_order_and_respect_the_limit() -> None:
    async def scenario() -> list[list[int]]:
        batches: OrderedBatches[int] = OrderedBatches(limit=3)
        for n in range(7):
            batches.put(n)
        return [await _take(batches) for _ in range(4)]

    assert asyncio.run(scenario()) == [[0, 1, 2], [3, 4, 5], [6], []]


def test_a_batch_put_back_comes_out_before_later_items() -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        batches: OrderedBatches[int] = OrderedBatches(limit=4)
        batches.put(1)
        batches.put(2)
        failed = await _take(batches)
        batches.put(3)  # arrived while the store was failing
        batches.put_back(failed)
        size = len(batches)
        again = await _take(batches)
        return failed, again, size

    failed, again, size = asyncio.run(scenario())
    assert failed == [1, 2]
    assert size == 3
    assert again == [1, 2, 3]


def test_a_put_back_batch_larger_than_the_limit_is_kept_whole() -> None:
    async def scenario() -> list[list[int]]:
        batches: OrderedBatches[int] = OrderedBatches(limit=2)
        batches.put(9)
        batches.put_back([1, 2, 3])
        return [await _take(batches), await _take(batches)]

    assert asyncio.run(scenario()) == [[1, 2, 3], [9]]


def test_take_waits_for_the_first_item_then_gathers_the_rest() -> None:
    async def scenario() -> list[int]:
        batches: OrderedBatches[int] = OrderedBatches(limit=10)
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, batches.put, 1)
        loop.call_later(0.04, batches.put, 2)  # within the gathering time after the first
        return await batches.take(wait_s=1.0, gather_s=0.1)

    assert asyncio.run(scenario()) == [1, 2]


def test_drain_gives_everything_left_in_order() -> None:
    async def scenario() -> tuple[list[int], int]:
        batches: OrderedBatches[int] = OrderedBatches(limit=2)
        for n in (3, 4):
            batches.put(n)
        batches.put_back([1, 2])
        return batches.drain(), len(batches)

    assert asyncio.run(scenario()) == ([1, 2, 3, 4], 0)
