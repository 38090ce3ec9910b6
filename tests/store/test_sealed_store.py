"""The sealed layer over a real backend (SQLite): plaintext never reaches the store, and the
one store conformance suite holds through it (over Redis: tests/store/test_redis.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.crypto import Keyring, key_id_of
from broker.errors import CryptoError, UnknownKey, VersionConflict
from broker.store import keys
from broker.store.base import Fence, Store
from broker.store.cache import RecordCache
from broker.store.sealed import SealedStore
from broker.store.sqlite import SqliteStore
from tests.store.conformance import StoreConformance

CANARY = b"canary-51d2e0-refresh-token"
KEY_A = keys.connection("conn_a")
KEY_B = keys.connection("conn_b")


class Provider:
    """A swappable keyring, as the broker's SIGHUP handler holds it."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def __call__(self) -> Keyring:
        return self.keyring


class TestSealedSqliteConformance(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SealedStore]:
        keyring = Keyring.generate("k1")
        store = SealedStore(await SqliteStore.open(str(tmp_path / "store.db")), lambda: keyring)
        yield store
        await store.close()


@pytest.fixture
def provider() -> Provider:
    return Provider(Keyring.generate("k1"))


@pytest.fixture
async def sealed(tmp_path: Path, provider: Provider) -> AsyncIterator[SealedStore]:
    inner = await SqliteStore.open(str(tmp_path / "broker.db"))
    store = SealedStore(inner, provider)
    try:
        yield store
    finally:
        await store.close()


async def test_round_trip_and_nothing_plain_in_the_store(
    sealed: SealedStore, tmp_path: Path
) -> None:
    version = await sealed.put(KEY_A, CANARY)
    assert await sealed.get(KEY_A) == (CANARY, version)

    raw = await sealed.inner.get(KEY_A)
    assert raw is not None
    assert CANARY not in raw[0]
    assert key_id_of(raw[0]) == "k1"
    page = await sealed.inner.scan("{conn_")
    assert all(CANARY not in entry.value for entry in page.entries)

    await sealed.put_ttl(keys.oauth_state("s1"), CANARY, ttl=60)
    await sealed.close()
    for path in tmp_path.iterdir():
        assert CANARY not in path.read_bytes(), path.name


async def test_a_fenced_put_is_sealed_and_evicts_the_cached_record(
    sealed: SealedStore, provider: Provider
) -> None:
    cached = SealedStore(sealed.inner, provider, RecordCache(sealed.inner.get, ttl=60))
    await cached.put(KEY_A, b"before")
    assert await cached.get_cached(KEY_A) == (b"before", 1)
    lock = keys.refresh_lock(keys.record_id(KEY_A))
    owner = await cached.acquire(lock, 30)
    assert owner is not None
    assert await cached.put_fenced(KEY_A, CANARY, 1, Fence(lock, owner)) == 2
    raw = await sealed.inner.get(KEY_A)
    assert raw is not None and CANARY not in raw[0]
    assert await cached.get_cached(KEY_A) == (CANARY, 2)


async def test_missing_key(sealed: SealedStore) -> None:
    assert await sealed.get(KEY_A) is None
    assert await sealed.take(KEY_A) is None


async def test_copied_ciphertext_fails_to_open(sealed: SealedStore) -> None:
    await sealed.put(KEY_A, CANARY)
    raw = await sealed.inner.get(KEY_A)
    assert raw is not None
    await sealed.inner.put(KEY_B, raw[0])
    with pytest.raises(CryptoError) as caught:
        await sealed.get(KEY_B)
    assert CANARY.decode() not in str(caught.value)


async def test_cas_passes_through(sealed: SealedStore) -> None:
    v1 = await sealed.put(KEY_A, b"one", expect_version=0)
    assert v1 == 1
    with pytest.raises(VersionConflict):
        await sealed.put(KEY_A, b"again", expect_version=0)
    v2 = await sealed.put(KEY_A, b"two", expect_version=v1)
    with pytest.raises(VersionConflict):
        await sealed.put(KEY_A, b"stale", expect_version=v1)
    assert await sealed.get(KEY_A) == (b"two", v2)
    with pytest.raises(VersionConflict):
        await sealed.delete(KEY_A, expect_version=v1)
    assert await sealed.delete(KEY_A, expect_version=v2)
    assert await sealed.get(KEY_A) is None


async def test_ttl_and_take(sealed: SealedStore) -> None:
    state = keys.oauth_state("abc")
    await sealed.put_ttl(state, CANARY, ttl=60)
    raw = await sealed.inner.get(state)
    assert raw is not None
    assert CANARY not in raw[0]
    assert await sealed.take(state) == CANARY
    assert await sealed.take(state) is None


async def test_scan_opens_and_scan_raw_does_not(sealed: SealedStore) -> None:
    await sealed.put(KEY_A, b"a-" + CANARY)
    await sealed.put(KEY_B, b"b-" + CANARY)
    await sealed.put(keys.oauth_app("stripe"), b"app")

    opened, cursor = {}, None
    while True:
        page = await sealed.scan(keys.CONNECTION_PREFIX, cursor, limit=1)
        opened.update({e.key: e.value for e in page.entries})
        if (cursor := page.cursor) is None:
            break
    assert opened == {KEY_A: b"a-" + CANARY, KEY_B: b"b-" + CANARY}

    raw = await sealed.scan_raw(keys.CONNECTION_PREFIX)
    assert {e.key for e in raw.entries} == {KEY_A, KEY_B}
    assert all(CANARY not in e.value and key_id_of(e.value) == "k1" for e in raw.entries)


async def test_keyring_rotation(sealed: SealedStore, provider: Provider) -> None:
    await sealed.put(KEY_A, b"old")
    provider.keyring = provider.keyring.with_key("k2").promoted("k2")

    assert await sealed.get(KEY_A) == (b"old", 1)
    await sealed.put(KEY_B, b"new")
    raw_a, raw_b = await sealed.inner.get(KEY_A), await sealed.inner.get(KEY_B)
    assert raw_a is not None
    assert raw_b is not None
    assert key_id_of(raw_a[0]) == "k1"
    assert key_id_of(raw_b[0]) == "k2"
    assert sealed.needs_rewrap(raw_a[0])
    assert not sealed.needs_rewrap(raw_b[0])

    # A rewrap is a get + CAS put; afterwards the old key can be retired.
    value, version = await sealed.get(KEY_A) or (b"", 0)
    await sealed.put(KEY_A, value, expect_version=version)
    provider.keyring = provider.keyring.without("k1")
    assert await sealed.get(KEY_A) == (b"old", 2)
    assert await sealed.get(KEY_B) == (b"new", 1)


async def test_retired_key_names_the_missing_id(sealed: SealedStore, provider: Provider) -> None:
    await sealed.put(KEY_A, b"old")
    provider.keyring = provider.keyring.with_key("k2").promoted("k2").without("k1")
    with pytest.raises(UnknownKey) as caught:
        await sealed.get(KEY_A)
    assert caught.value.key_id == "k1"


async def test_locks_and_due_index_pass_through(sealed: SealedStore) -> None:
    lock = keys.refresh_lock("conn_a")
    token = await sealed.acquire(lock, ttl=30)
    assert token is not None
    assert await sealed.acquire(lock, ttl=30) is None
    assert await sealed.release(lock, token)

    await sealed.schedule(KEY_A, at=100.0)
    assert [item.key for item in await sealed.due(now=200.0, limit=10)] == [KEY_A]
    await sealed.unschedule(KEY_A)
    assert await sealed.due(now=200.0, limit=10) == []
    await sealed.ping()


async def test_is_a_store(sealed: SealedStore) -> None:
    # Same protocol as the backend it wraps, so services can take either.
    assert isinstance(sealed, Store)
