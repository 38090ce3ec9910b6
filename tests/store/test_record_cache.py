"""The runtime read cache over a real Redis: one fetch per miss, however many callers miss at
once, and never a value older than a write the caller could have seen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from broker.crypto import Keyring
from broker.errors import StoreUnavailable
from broker.store import keys
from broker.store.cache import RecordCache
from broker.store.redis import RedisStore
from broker.store.sealed import SealedStore

KEY = keys.connection("conn_cache0000000000000000")
KEYRING = Keyring.generate("k1")


class CountingStore:
    """The real store, counting the reads that reach it (and able to hold back their answers:
    a held read has already read its value)."""

    def __init__(self, inner: RedisStore) -> None:
        self.inner = inner
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def get(self, key: str) -> tuple[bytes, int] | None:
        self.reads += 1
        found = await self.inner.get(key)
        await self.gate.wait()
        return found

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    namespace = f"test-cache-{uuid.uuid4().hex[:8]}"
    store = await RedisStore.open(URL, namespace=namespace)
    try:
        yield store
    finally:
        await store.close()
        cleanup = await RedisStore.open(URL, namespace=namespace)
        await cleanup.delete(KEY)
        await cleanup.close()


@pytest.fixture
async def cached(redis_store: RedisStore) -> tuple[CountingStore, SealedStore]:
    """A sealed store with the read cache over the counting store, KEY holding b"v1"."""
    counting = CountingStore(redis_store)
    sealed = SealedStore(counting, lambda: KEYRING, RecordCache(counting.get, ttl=60))  # type: ignore[arg-type]
    await sealed.put(KEY, b"v1")
    return counting, sealed


async def test_concurrent_misses_share_one_fetch(cached: tuple[CountingStore, SealedStore]) -> None:
    counting, sealed = cached
    counting.gate.clear()
    readers = [asyncio.ensure_future(sealed.get_cached(KEY)) for _ in range(64)]
    await asyncio.sleep(0.05)
    counting.gate.set()
    results = await asyncio.gather(*readers)
    assert counting.reads == 1
    assert {r and r[0] for r in results} == {b"v1"}
    assert await sealed.get_cached(KEY) == results[0]  # now a hit
    assert counting.reads == 1


async def test_a_fetch_started_before_a_write_is_not_shared_after_it(
    cached: tuple[CountingStore, SealedStore],
) -> None:
    counting, sealed = cached
    counting.gate.clear()
    early = asyncio.ensure_future(sealed.get_cached(KEY))
    await asyncio.sleep(0.05)  # its fetch has read b"v1" and is held
    await sealed.put(KEY, b"new")  # this replica's own write, during that fetch
    late = asyncio.ensure_future(sealed.get_cached(KEY))
    await asyncio.sleep(0.05)
    counting.gate.set()
    got = await late
    assert got is not None and got[0] == b"new"
    assert counting.reads == 2
    old = await early
    assert old is not None and old[0] == b"v1"
    # and what the early fetch read is not left in the cache either
    again = await sealed.get_cached(KEY)
    assert again is not None and again[0] == b"new"


async def test_a_caller_that_goes_away_does_not_cancel_the_others(
    cached: tuple[CountingStore, SealedStore],
) -> None:
    counting, sealed = cached
    counting.gate.clear()
    first = asyncio.ensure_future(sealed.get_cached(KEY))
    second = asyncio.ensure_future(sealed.get_cached(KEY))
    await asyncio.sleep(0.05)
    first.cancel()
    counting.gate.set()
    got = await second
    assert got is not None and got[0] == b"v1"
    assert counting.reads == 1


async def test_a_failed_fetch_reaches_every_caller_and_is_not_kept(
    redis_store: RedisStore, cached: tuple[CountingStore, SealedStore]
) -> None:
    counting, sealed = cached
    await redis_store.close()  # every call now fails with StoreUnavailable
    results = await asyncio.gather(
        *(sealed.get_cached(KEY) for _ in range(5)), return_exceptions=True
    )
    assert counting.reads == 1
    assert all(isinstance(r, StoreUnavailable) for r in results)


async def test_a_hot_entry_is_refreshed_ahead_without_a_reader_waiting(
    redis_store: RedisStore,
) -> None:
    counting = CountingStore(redis_store)
    cache = RecordCache(counting.get, ttl=0.4)
    sealed = SealedStore(counting, lambda: KEYRING, cache)  # type: ignore[arg-type]
    await sealed.put(KEY, b"v1")
    assert (await sealed.get_cached(KEY) or (b"",))[0] == b"v1"
    assert counting.reads == 1
    # another replica's write, its change message lost: only a fetch can see it
    await redis_store.put(KEY, sealed.seal(KEY, b"v2"))
    assert (await sealed.get_cached(KEY) or (b"",))[0] == b"v1"  # young entry: plain hit
    assert counting.reads == 1
    await asyncio.sleep(0.25)  # past half the ttl
    counting.gate.clear()  # the store is slow now: a reader that waited on it would hang
    found = await asyncio.wait_for(sealed.get_cached(KEY), 0.1)
    assert found is not None and found[0] == b"v1"  # served at once, from the cache
    assert counting.reads == 2  # and a refresh started behind it
    counting.gate.set()
    await asyncio.sleep(0.05)
    found = sealed.peek_cached(KEY)
    assert found is not None and found[0] == b"v2"  # the refresh landed: no miss needed
    assert cache.misses == 1


async def test_an_entry_nobody_reads_still_expires(redis_store: RedisStore) -> None:
    counting = CountingStore(redis_store)
    sealed = SealedStore(counting, lambda: KEYRING, RecordCache(counting.get, ttl=0.2))  # type: ignore[arg-type]
    await sealed.put(KEY, b"v1")
    await sealed.get_cached(KEY)
    await asyncio.sleep(0.25)
    assert sealed.peek_cached(KEY) is None  # past its ttl: never served
