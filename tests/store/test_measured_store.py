"""The measured store: every call of a real backend timed per operation, a failure counted
per operation with the broker's error code, and a lost compare-and-set not counted as one."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from broker.errors import LockLost, StoreUnavailable, VersionConflict
from broker.store import keys
from broker.store.base import Fence, Store
from broker.store.measured import OPERATIONS, MeasuredStore, backend_name
from broker.store.redis import RedisStore
from broker.store.sqlite import SqliteStore
from tests.helpers import metric
from tests.store.redis_servers import RedisServer, require_binaries

KEY = keys.connection("conn_measured")
LOCK = keys.refresh_lock("conn_measured")


def timed(backend: str, op: str) -> float:
    return metric("broker_store_operation_duration_seconds_count", backend=backend, op=op)


def errors(backend: str, op: str, error: str) -> float:
    return metric("broker_store_errors_total", backend=backend, op=op, error=error)


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store: Store
    if request.param == "sqlite":
        store = await SqliteStore.open(str(tmp_path / "measured.db"))
    else:
        server: RedisServer = request.getfixturevalue("server")  # its own, gone afterwards
        store = await RedisStore.open(server.url, namespace="measured")
    try:
        yield store
    finally:
        await store.close()


def every_call(store: Store) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "put": lambda: store.put(KEY, b"v1"),
        "get": lambda: store.get(KEY),
        "put_many": lambda: store.put_many([(KEY, b"v2", None)]),
        "acquire": lambda: store.acquire(LOCK, 30),
        "put_fenced": lambda: store.put_fenced(KEY, b"v3", None, Fence(LOCK, "not-the-owner")),
        "release": lambda: store.release(LOCK, "not-the-owner"),
        "rate_limit": lambda: store.rate_limit(keys.rate_bucket("conn_measured", "t"), 1, 1),
        "scan": lambda: store.scan(keys.CONNECTION_PREFIX),
        "put_ttl": lambda: store.put_ttl(keys.oauth_state("measured"), b"state", 30),
        "take": lambda: store.take(keys.oauth_state("measured")),
        "schedule": lambda: store.schedule(KEY, time.time()),
        "due": lambda: store.due(time.time(), 10),
        "unschedule": lambda: store.unschedule(KEY),
        "index_add": lambda: store.index_add("measured", "m1", 30),
        "index_range": lambda: store.index_range("measured"),
        "index_trim": lambda: store.index_trim("measured", "m2"),
        "delete": lambda: store.delete(KEY),
        "ping": lambda: store.ping(),
    }


async def test_every_operation_is_timed_per_backend(backend: Store) -> None:
    name = "sqlite" if isinstance(backend, SqliteStore) else "redis"
    store = MeasuredStore(backend, name)
    calls = every_call(store)
    assert set(calls) == set(OPERATIONS)
    before = {op: timed(name, op) for op in OPERATIONS}
    for op, call in calls.items():
        try:
            await call()
        except LockLost:
            assert op == "put_fenced"  # the fence is not ours: an answer, still timed
    assert {op: timed(name, op) - before[op] for op in OPERATIONS} == dict.fromkeys(OPERATIONS, 1)


async def test_a_lost_compare_and_set_is_not_an_error(backend: Store) -> None:
    label = f"conflicts-{uuid.uuid4().hex}"  # this test's own series
    store = MeasuredStore(backend, label)
    await store.put(KEY, b"v1")
    with pytest.raises(VersionConflict):
        await store.put(KEY, b"v2", expect_version=7)
    assert timed(label, "put") == 2
    assert not any(
        errors(label, "put", error) for error in ("version_conflict", "conflict", "other")
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    require_binaries()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_an_outage_is_counted_per_operation(server: RedisServer) -> None:
    backend = await RedisStore.open(server.url, namespace="measured", timeout=2.0)
    store = MeasuredStore(backend, backend_name(server.url))
    try:
        await store.put(KEY, b"before")
        server.kill()
        before = {op: errors("redis", op, "store_unavailable") for op in ("get", "put", "acquire")}
        for call in (store.get(KEY), store.put(KEY, b"x"), store.acquire(LOCK, 30)):
            with pytest.raises(StoreUnavailable):
                await call
        after = {op: errors("redis", op, "store_unavailable") for op in before}
        assert {op: after[op] - before[op] for op in before} == dict.fromkeys(before, 1)
    finally:
        await store.close()


def test_the_backend_label_never_carries_the_url() -> None:
    assert backend_name("redis://:hunter2-PASSWORD@redis:6379/0") == "redis"
    assert backend_name("rediss+cluster://u:p@a:1,b:2") == "redis"
    assert backend_name("sqlite:////var/lib/broker/broker.db") == "sqlite"
