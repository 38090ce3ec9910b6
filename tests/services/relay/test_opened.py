"""The proxy's opened API-key credentials (`relay.opened`) over a real Redis and the record
cache: served only for the version the cache holds, and dropped the moment the cache drops
the record for a change, whatever the next call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from broker.crypto import Keyring
from broker.crypto.runtime_tokens import RuntimeGrant
from broker.manifest import BearerAuth
from broker.services.relay.credentials import bearer
from broker.services.relay.opened import OpenedCredentials
from broker.store import keys
from broker.store.cache import RecordCache
from broker.store.redis import RedisStore
from broker.store.sealed import SealedStore

KEY = keys.connection("conn_opened00000000000000")
KEYRING = Keyring.generate("k1")
GRANT = RuntimeGrant("tok", "conn_opened00000000000000", "t-1", "px", frozenset(), False, 0, 9)
AUTH = BearerAuth(type="bearer", secret="api_key")
CREDENTIAL = bearer("sk_opened_canary")


@pytest.fixture
async def store() -> AsyncIterator[SealedStore]:
    namespace = f"test-opened-{uuid.uuid4().hex[:8]}"
    inner = await RedisStore.open("redis://127.0.0.1:6379/0", namespace=namespace)
    try:
        yield SealedStore(inner, lambda: KEYRING, RecordCache(inner.get, ttl=60))
    finally:
        await inner.delete(KEY)
        await inner.close()


async def opened_at_cached_version(store: SealedStore) -> tuple[OpenedCredentials, int]:
    await store.put(KEY, b"{}")
    found = await store.get_cached(KEY)
    assert found is not None
    opened = OpenedCredentials(store)
    opened.put(KEY, found[1], GRANT, AUTH, CREDENTIAL)
    return opened, found[1]


async def test_served_for_the_cached_version_grant_and_auth_only(store: SealedStore) -> None:
    opened, version = await opened_at_cached_version(store)
    assert store.cached_version(KEY) == version
    assert opened.get(KEY, version, GRANT, AUTH) is CREDENTIAL
    assert opened.get(KEY, version, GRANT, BearerAuth(type="bearer", secret="api_key")) is None
    assert KEY not in opened  # a mismatch drops it, not only misses
    opened.put(KEY, version, GRANT, AUTH, CREDENTIAL)
    other_tenant = RuntimeGrant("tok", GRANT.connection_id, "t-2", "px", frozenset(), False, 0, 9)
    assert opened.get(KEY, version, other_tenant, AUTH) is None
    opened.put(KEY, version, GRANT, AUTH, CREDENTIAL)
    assert opened.get(KEY, version + 1, GRANT, AUTH) is None


async def test_dropped_with_the_record_on_a_write_or_a_lost_feed(store: SealedStore) -> None:
    opened, _ = await opened_at_cached_version(store)
    await store.put(KEY, b'{"changed": true}')  # this replica's write evicts the entry
    assert KEY not in opened
    opened, _ = await opened_at_cached_version(store)
    store._cache.on_change(None)  # type: ignore[union-attr]  # the change feed resubscribed
    assert KEY not in opened


async def test_nothing_is_kept_without_a_record_cache(store: SealedStore) -> None:
    uncached = SealedStore(store.inner, lambda: KEYRING, None)
    opened = OpenedCredentials(uncached)
    opened.put(KEY, 1, GRANT, AUTH, CREDENTIAL)
    assert KEY not in opened
