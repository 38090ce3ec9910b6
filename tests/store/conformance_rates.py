"""Conformance cases for `Store.rate_limit` (token buckets), mixed into `StoreConformance`."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from broker.store import keys
from broker.store.base import Store

SLOW = 0.001
"""A refill rate (tokens/s) too slow to matter within one test."""


def bucket() -> str:
    return keys.rate_bucket(f"rate_{uuid.uuid4().hex[:12]}", "test")


class RateLimitConformance:
    async def test_a_new_bucket_grants_its_burst_then_says_how_long_to_wait(
        self, store: Store
    ) -> None:
        key = bucket()
        assert [await store.rate_limit(key, SLOW, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = await store.rate_limit(key, SLOW, 3)
        assert 0 < wait <= 1 / SLOW

    async def test_a_refused_take_takes_nothing(self, store: Store) -> None:
        key = bucket()
        rate = 10.0
        assert await store.rate_limit(key, rate, 1) == 0.0
        waits = [await store.rate_limit(key, rate, 1) for _ in range(5)]
        assert all(0 < w <= 1 / rate for w in waits)
        await asyncio.sleep(waits[-1] + 0.05)
        assert await store.rate_limit(key, rate, 1) == 0.0

    async def test_tokens_refill_at_the_rate_up_to_the_burst(self, store: Store) -> None:
        key = bucket()
        assert await store.rate_limit(key, 20.0, 2, cost=2) == 0.0
        assert await store.rate_limit(key, 20.0, 2) > 0
        await asyncio.sleep(0.3)  # 6 tokens' worth of refill, capped at the burst of 2
        assert await store.rate_limit(key, 20.0, 2, cost=2) == 0.0
        assert await store.rate_limit(key, 20.0, 2) > 0

    async def test_a_cost_above_what_is_left_is_refused_whole(self, store: Store) -> None:
        key = bucket()
        assert await store.rate_limit(key, SLOW, 5, cost=3) == 0.0
        wait = await store.rate_limit(key, SLOW, 5, cost=3)
        assert wait == pytest.approx(1 / SLOW, rel=0.01)  # one token short at 0.001/s
        assert await store.rate_limit(key, SLOW, 5, cost=2) == 0.0

    async def test_concurrent_takes_never_spend_a_token_twice(self, store: Store) -> None:
        key = bucket()
        results = await asyncio.gather(*(store.rate_limit(key, SLOW, 5) for _ in range(30)))
        assert results.count(0.0) == 5

    async def test_buckets_are_per_key_and_apart_from_records(self, store: Store) -> None:
        first, second = bucket(), bucket()
        assert await store.rate_limit(first, SLOW, 1) == 0.0
        assert await store.rate_limit(first, SLOW, 1) > 0
        assert await store.rate_limit(second, SLOW, 1) == 0.0
        await store.put(first, b"a record under the same key")
        assert await store.get(first) == (b"a record under the same key", 1)
        assert await store.rate_limit(first, SLOW, 1) > 0
        found, cursor = [], None
        while True:  # a page may be short while the scan goes on
            page = await store.scan("{rate_", cursor)
            found += [e.key for e in page.entries if e.key in (first, second)]
            if (cursor := page.cursor) is None:
                break
        assert found == [first]

    async def test_arguments_are_checked(self, store: Store) -> None:
        for rate, burst, cost in ((0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 2, 3), (-1, 1, 1)):
            with pytest.raises(ValueError, match="must be"):
                await store.rate_limit(bucket(), rate, burst, cost)
