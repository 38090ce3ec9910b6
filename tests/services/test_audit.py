"""The audit log (broker.services.audit) on SQLite and on the machine's Redis: entries come
back newest first, page by cursor without a gap or a repeat, and a query reads only the
batches its page needs, however long the tenant's history."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from broker.crypto import Keyring
from broker.errors import InvalidRequest
from broker.services import audit
from broker.services.audit import AuditLog
from broker.store import keys
from broker.store.base import Store
from broker.store.redis import RedisStore
from broker.store.sealed import SealedStore
from broker.store.sqlite import SqliteStore

REDIS_URL = "redis://127.0.0.1:6379/0"
KEYRING = Keyring.generate("k1")


class CountingStore(SealedStore):
    """Counts the record reads a query makes."""

    gets = 0

    async def get(self, key: str) -> tuple[bytes, int] | None:
        self.gets += 1
        return await super().get(key)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CountingStore]:
    inner: Store
    namespace = f"audit-test-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        inner = await SqliteStore.open(str(tmp_path / "broker.db"))
    else:
        inner = await RedisStore.open(REDIS_URL, namespace=namespace)
    yield CountingStore(inner, lambda: KEYRING)
    await inner.close()
    if request.param == "redis":
        client = Redis.from_url(REDIS_URL)
        names = [k async for k in client.scan_iter(match=f"{namespace}[:#]*")]
        if names:
            await client.delete(*names)
        await client.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def write_history(
    log: AuditLog, clock: Clock, flushes: int, per_flush: int, step: float = 1.0
) -> None:
    """`flushes` batches `step` seconds apart for tenant t1, entries alternating two
    connections."""
    for f in range(flushes):
        for e in range(per_flush):
            log.record(
                actor="runtime:rt_x",
                action="secret.read",
                tenant_id="t1",
                connection_id=f"conn_{e % 2}",
                name=f"name-{f:03d}-{e}",
            )
            clock.now += 0.001
        await log.flush()
        clock.now += step


async def read_all(
    log: AuditLog, limit: int, connection_id: str | None = None
) -> tuple[list[str], int]:
    names: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        entries, cursor = await log.query("t1", connection_id, limit, before=cursor)
        pages += 1
        assert len(entries) <= limit
        names.extend(str(e["name"]) for e in entries)
        if cursor is None:
            return names, pages


async def test_pages_newest_first_without_gaps_or_repeats(store: CountingStore) -> None:
    clock = Clock()
    log = AuditLog(store, clock, retention=3600)
    await write_history(log, clock, flushes=12, per_flush=5)
    for junk in ("junk", "9999999999999-not-ours", "0"):  # the store is untrusted
        await store.index_add(keys.audit_index("t1"), junk, 3600)
    newest_first = [f"name-{f:03d}-{e}" for f in reversed(range(12)) for e in reversed(range(5))]
    for limit in (1, 3, 5, 7, 60, 500):
        names, pages = await read_all(log, limit)
        assert names == newest_first, limit
        assert pages <= len(newest_first) // limit + 2
    only_1 = [n for n in newest_first if int(n[-1]) % 2 == 1]
    names, _ = await read_all(log, 4, connection_id="conn_1")
    assert names == only_1


async def test_a_query_reads_only_the_batches_its_page_needs(store: CountingStore) -> None:
    clock = Clock()
    log = AuditLog(store, clock, retention=3600)
    await write_history(log, clock, flushes=400, per_flush=2)
    store.gets = 0
    entries, cursor = await log.query("t1", limit=10)
    assert [e["name"] for e in entries][:2] == ["name-399-1", "name-399-0"]
    assert cursor is not None
    assert store.gets <= audit.BATCH_PAGE  # one index page, not 400 batches


async def test_a_narrow_filter_answers_a_short_page_and_a_cursor(
    store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "MAX_BATCHES_READ", 5)
    monkeypatch.setattr(audit, "BATCH_PAGE", 2)
    clock = Clock()
    log = AuditLog(store, clock, retention=3600)
    log.record(actor="admin", action="settings.change", tenant_id="t1", connection_id="conn_old")
    await log.flush()
    clock.now += 1.0
    await write_history(log, clock, flushes=20, per_flush=2)
    for n in range(5):  # ids the broker never wrote, between the real ones
        await store.index_add(keys.audit_index("t1"), f"{int(clock.now * 1000) - 3500 * n}x", 3600)
    entries, cursor = await log.query("t1", "conn_old", limit=10)
    assert entries == [] and cursor is not None  # read its share, then handed back a cursor
    pages = 1
    while cursor is not None and not entries:
        entries, cursor = await log.query("t1", "conn_old", limit=10, before=cursor)
        pages += 1
    assert [e["action"] for e in entries] == ["settings.change"]
    assert pages >= 4  # 21 batches at most 6 a call


async def test_entries_and_their_index_expire_with_the_retention(store: CountingStore) -> None:
    clock = Clock()
    log = AuditLog(store, clock, retention=0.5)
    await write_history(log, clock, flushes=3, per_flush=1, step=0.01)
    assert len((await log.query("t1"))[0]) == 3
    await asyncio.sleep(0.8)
    clock.now = time.time() + 10.0  # past every batch id written above
    store.gets = 0
    assert await log.query("t1") == ([], None)
    assert store.gets == 0  # past the retention: not even read
    await write_history(log, clock, flushes=1, per_flush=1)  # a flush trims what has expired
    assert len(await store.index_range(keys.audit_index("t1"))) == 1


@pytest.mark.parametrize(
    "cursor",
    ["", "x", "1700000000000-abcdefgh-1", "1700000000000-0011aabb-1.x", "../etc", "1.2.3"],
)
async def test_a_bad_cursor_is_refused(store: CountingStore, cursor: str) -> None:
    log = AuditLog(store, Clock(), retention=3600)
    with pytest.raises(InvalidRequest):
        await log.query("t1", before=cursor)


async def test_a_cursor_into_an_expired_batch_goes_on_with_older_ones(
    store: CountingStore,
) -> None:
    clock = Clock()
    log = AuditLog(store, clock, retention=3600)
    await write_history(log, clock, flushes=3, per_flush=2)
    entries, cursor = await log.query("t1", limit=3)
    assert cursor is not None and "." in cursor
    batch_id = cursor.split(".")[0]
    await store.delete(keys.audit_batch("t1", batch_id))  # gone meanwhile (expired)
    rest: list[Any] = (await log.query("t1", limit=10, before=cursor))[0]
    assert [e["name"] for e in entries + rest] == [
        "name-002-1",
        "name-002-0",
        "name-001-1",
        "name-000-1",
        "name-000-0",
    ]


async def test_caller_chosen_names_are_bounded_per_connection_and_minute(
    store: CountingStore,
) -> None:
    # a runtime picks the names it asks for: 10,000 made-up names must not become 10,000
    # entries (nor push real ones out of the buffer)
    clock = Clock()
    clock.now = 60 * (int(clock.now) // 60)  # the start of a minute
    log = AuditLog(store, clock, retention=3600)

    def ask(connection_id: str, name: str) -> None:
        log.record(
            actor="runtime:rt_x",
            action="secret.read",
            tenant_id="t1",
            connection_id=connection_id,
            name=name,
            outcome="not_granted",
            untrusted_name=True,
        )

    for i in range(10_000):
        ask("conn_a", f"made-up-{i}")
    ask("conn_a", "made-up-3")  # one of the names kept: still its own entry
    ask("conn_b", "other-connection")  # its own budget
    clock.now += 60
    ask("conn_a", "next-minute")  # a new window, a new budget
    entries, _ = await log.query("t1", limit=1000)

    named = [e for e in entries if e["connection_id"] == "conn_a" and e["name"] is not None]
    assert len(named) == audit.NAMES_PER_MINUTE + 1
    assert {"made-up-3", "next-minute"} <= {e["name"] for e in named}
    (rest,) = [e for e in entries if e["name"] is None]
    assert (rest["connection_id"], rest["outcome"]) == ("conn_a", "not_granted")
    assert rest["count"] == 10_000 - audit.NAMES_PER_MINUTE
    assert sum(e["count"] for e in entries if e["connection_id"] == "conn_a") == 10_002
    assert [e["name"] for e in entries if e["connection_id"] == "conn_b"] == ["other-connection"]
