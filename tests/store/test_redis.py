"""RedisStore: the shared conformance suite on standalone Redis and on a 3-node Cluster, plus
what only Redis has (slots, key patterns, the partitioned due index, URL forms)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient

from broker.crypto import Keyring
from broker.errors import ConfigError
from broker.store import keys
from broker.store.redis import RedisStore
from broker.store.redis.connect import _hosts
from broker.store.redis.layout import Layout
from broker.store.sealed import SealedStore
from tests.store.conformance import StoreConformance
from tests.store.redis_servers import (
    RedisCluster,
    RedisServer,
    Sentinel,
    redis_server_fixture,
    require_binaries,
)

redis_server = redis_server_fixture("session")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    require_binaries()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


def _raw(url: str) -> Redis | ClusterClient:
    if url.startswith("redis+cluster://"):
        hosts = _hosts(url.removeprefix("redis+cluster://"), 6379)
        return ClusterClient(startup_nodes=[ClusterNode(h, p) for h, p in hosts])
    return Redis.from_url(url)


async def _wipe(url: str, namespace: str) -> None:
    raw = _raw(url)
    try:
        for pattern in (f"{namespace}:*", f"{namespace}#*"):
            names = [name async for name in raw.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(names), 50):
                await asyncio.gather(*(raw.unlink(n) for n in names[start : start + 50]))
    finally:
        await raw.aclose()


async def _open(url: str, namespace: str | None = None, **options: int) -> RedisStore:
    return await RedisStore.open(url, namespace=namespace or f"t{uuid.uuid4().hex}", **options)


@pytest.fixture
async def standalone(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = await _open(redis_server.url)
    yield store
    await store.close()
    await _wipe(redis_server.url, store._layout.namespace)


@pytest.fixture
async def cluster(redis_cluster: RedisCluster) -> AsyncIterator[RedisStore]:
    store = await _open(redis_cluster.url)
    yield store
    await store.close()
    await _wipe(redis_cluster.url, store._layout.namespace)


@pytest.fixture(params=["redis_server", "redis_cluster"])
async def both(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    """Standalone, then Cluster, with the default (partitioned) layout."""
    url = request.getfixturevalue(request.param).url
    store = await _open(url)
    yield store
    await store.close()
    await _wipe(url, store._layout.namespace)


# The suite's due-index test wants one total order, which only one partition gives; the
# partitioned index (the default) is tested below.
class TestRedisStandaloneConformance(StoreConformance):
    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[RedisStore]:
        store = await _open(redis_server.url, due_partitions=1)
        yield store
        await store.close()
        await _wipe(redis_server.url, store._layout.namespace)


class TestRedisClusterConformance(StoreConformance):
    @pytest.fixture
    async def store(self, redis_cluster: RedisCluster) -> AsyncIterator[RedisStore]:
        store = await _open(redis_cluster.url, due_partitions=1)
        yield store
        await store.close()
        await _wipe(redis_cluster.url, store._layout.namespace)


class TestSealedRedisConformance(StoreConformance):
    """The sealed layer over Redis: every case holds through it too (values round-trip sealed,
    everything else passes through)."""

    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[SealedStore]:
        inner = await _open(redis_server.url, due_partitions=1)
        keyring = Keyring.generate("k1")
        yield SealedStore(inner, lambda: keyring)
        await inner.close()
        await _wipe(redis_server.url, inner._layout.namespace)


async def test_connection_keys_share_one_slot(
    cluster: RedisStore, redis_cluster: RedisCluster
) -> None:
    ns, conn = cluster._layout.namespace, f"conn_{uuid.uuid4().hex[:8]}"
    await cluster.put(keys.connection(conn), b"record")
    assert await cluster.acquire(keys.refresh_lock(conn), 30) is not None
    raw = _raw(redis_cluster.url)
    assert isinstance(raw, ClusterClient)
    try:
        names = [f"{ns}:{keys.connection(conn)}", f"{ns}:{keys.refresh_lock(conn)}#lock"]
        slots = {await raw.cluster_keyslot(name) for name in names}
        assert len(slots) == 1
        for name in names:
            assert await raw.exists(name) == 1
    finally:
        await raw.aclose()


async def test_all_of_a_connections_keys_match_its_pattern(redis_server: RedisServer) -> None:
    conn = f"conn_{uuid.uuid4().hex[:8]}"
    store = await _open(redis_server.url, namespace="broker")
    raw = Redis.from_url(redis_server.url)
    try:
        await store.put(keys.connection(conn), b"record")
        await store.put(keys.connection(f"{conn}x"), b"a neighbour with a longer id")
        assert await store.acquire(keys.refresh_lock(conn), 30) is not None
        found = {k.decode() async for k in raw.scan_iter(match=f"broker:{{{conn}}}:*")}
        assert found == {f"broker:{{{conn}}}:record", f"broker:{{{conn}}}:refresh-lock#lock"}
    finally:
        await raw.aclose()
        await store.close()
        await _wipe(redis_server.url, "broker")


async def test_scan_sees_records_only(both: RedisStore) -> None:
    store = both
    conn = f"conn_{uuid.uuid4().hex[:8]}"
    await store.put(keys.connection(conn), b"x")
    await store.acquire(keys.refresh_lock(conn), 30)
    await store.schedule(keys.connection(conn), time.time())
    for prefix in ("", "{", keys.CONNECTION_PREFIX, f"{{{conn}}}:"):
        page = await store.scan(prefix)
        assert [e.key for e in page.entries] == [keys.connection(conn)]
        assert page.cursor is None


async def test_scan_prefix_is_literal(standalone: RedisStore) -> None:
    # tenant ids are free text: MATCH specials in a prefix must match only themselves
    tenants = ["a*", "a?", "a[b]", "a\\", "ab", "a", "a\\*"]
    for tenant in tenants:
        await standalone.put(keys.oauth_app("glob", tenant), tenant.encode())
    for tenant in tenants:
        prefix = keys.oauth_app("glob", tenant)
        page = await standalone.scan(prefix)
        expected = [t for t in tenants if keys.oauth_app("glob", t).startswith(prefix)]
        assert sorted(e.value for e in page.entries) == sorted(t.encode() for t in expected)


async def test_scan_with_tiny_pages_carries_overflow(both: RedisStore) -> None:
    store = both
    expected = {keys.connection(f"conn_{i:03d}") for i in range(300)}
    for key in expected:
        await store.put(key, b"v")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.scan(keys.CONNECTION_PREFIX, cursor, 1)
        assert len(page.entries) <= 1
        seen += [e.key for e in page.entries]
        if (cursor := page.cursor) is None:
            break
    assert sorted(seen) == sorted(expected)


async def test_bad_scan_arguments(standalone: RedisStore) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await standalone.scan("", "not a cursor")
    with pytest.raises(ValueError, match="limit"):
        await standalone.scan("", None, 0)


async def test_partitioned_due_index(both: RedisStore) -> None:
    store = both
    now = time.time()
    due = {keys.connection(f"conn_due{i}"): now - i for i in range(200)}
    for key, at in due.items():
        await store.schedule(key, at)
    await store.schedule(keys.connection("conn_later"), now + 60)
    everything = await store.due(now, 1000)
    assert sorted(i.key for i in everything) == sorted(due)
    assert all(i.at == pytest.approx(due[i.key], abs=1e-3) for i in everything)
    layout = store._layout
    by_partition: dict[str, list[float]] = {}
    for item in everything:
        by_partition.setdefault(layout.due_key(item.key), []).append(item.at)
    assert len(by_partition) == 16
    assert all(ats == sorted(ats) for ats in by_partition.values())
    firsts = set()
    for _ in range(30):
        page = await store.due(now, 10)
        assert len(page) == 10
        firsts.add(layout.due_key(page[0].key))
    assert len(firsts) > 3, "due() should start at different partitions"


async def test_due_partitions_spread_over_cluster_nodes(
    cluster: RedisStore, redis_cluster: RedisCluster
) -> None:
    raw = _raw(redis_cluster.url)
    assert isinstance(raw, ClusterClient)
    try:
        await raw.initialize()
        owners = set()
        for name in cluster._layout.due_keys:
            node = raw.get_node_from_key(name)
            assert node is not None
            owners.add(node.name)
        assert len(owners) == 3
    finally:
        await raw.aclose()


def test_layout_rejects_bad_names() -> None:
    with pytest.raises(ValueError, match="namespace"):
        Layout("has:colon")
    with pytest.raises(ValueError, match="lock"):
        Layout("ok").record("{conn_1}:x#lock")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379",
        "redis+cluster://localhost:6379/0",
        "redis+sentinel://localhost:26379",
        "redis+sentinel://localhost:26379/a/b/c",
        "redis+cluster://:6379",
    ],
)
async def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        await RedisStore.open(url)
    assert "password" not in str(raised.value)


def test_host_lists() -> None:
    assert _hosts("a:1,b,[::1]:3,[::2]", 7) == [("a", 1), ("b", 7), ("::1", 3), ("::2", 7)]


async def test_sentinel(tmp_path: Path, redis_server: RedisServer) -> None:
    sentinel = Sentinel(tmp_path / "sentinel", redis_server)
    sentinel.start()
    try:
        store = await _open(sentinel.url)
        try:
            key = keys.connection("conn_sentinel")
            assert await store.put(key, b"via sentinel") == 1
            assert await store.get(key) == (b"via sentinel", 1)
        finally:
            await store.close()
            await _wipe(redis_server.url, store._layout.namespace)
    finally:
        sentinel.stop()
