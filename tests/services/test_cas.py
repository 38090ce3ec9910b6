"""`cas.update`, the one read-change-write loop: a lost write is read and changed again, a
change may write nothing, abort, or delete, and a fenced write needs its lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.crypto import Keyring
from broker.errors import LockLost, NotFound, VersionConflict
from broker.services import cas, records
from broker.services.records import TenantIndex
from broker.store.base import Fence
from broker.store.sealed import SealedStore
from broker.store.sqlite import SqliteStore

KEYRING = Keyring.generate("k1")
KEY = "{tenant_t1}:connections"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SealedStore]:
    inner = await SqliteStore.open(str(tmp_path / "broker.db"))
    yield SealedStore(inner, lambda: KEYRING)
    await inner.close()


def appending(member: str) -> cas.Change[TenantIndex]:
    async def change(index: TenantIndex | None) -> TenantIndex:
        ids = index.connection_ids if index is not None else []
        return TenantIndex(connection_ids=[*ids, member])

    return change


async def test_a_missing_record_is_created_and_an_existing_one_changed(
    store: SealedStore,
) -> None:
    first = await cas.update(store, KEY, TenantIndex, appending("a"), contended="busy")
    assert first.written and first.version == 1
    second = await cas.update(store, KEY, TenantIndex, appending("b"), contended="busy")
    assert second.record == TenantIndex(connection_ids=["a", "b"]) and second.version == 2
    assert await records.load(store, KEY, TenantIndex) == (second.record, 2)


async def test_a_lost_write_is_read_and_changed_again(store: SealedStore) -> None:
    await cas.update(store, KEY, TenantIndex, appending("a"), contended="busy")
    attempts = 0

    async def racing(index: TenantIndex | None) -> TenantIndex:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # someone else writes between our read and our write
            await records.save(store, KEY, TenantIndex(connection_ids=["a", "x"]), None)
        ids = index.connection_ids if index is not None else []
        return TenantIndex(connection_ids=[*ids, "b"])

    result = await cas.update(store, KEY, TenantIndex, racing, contended="busy")
    assert attempts == 2
    assert result.record == TenantIndex(connection_ids=["a", "x", "b"])


async def test_it_gives_up_with_the_message_given(store: SealedStore) -> None:
    async def always_raced(index: TenantIndex | None) -> TenantIndex:
        await records.save(store, KEY, TenantIndex(connection_ids=["x"]), None)
        return TenantIndex()

    with pytest.raises(VersionConflict, match="too busy"):
        await cas.update(store, KEY, TenantIndex, always_raced, contended="too busy")


async def test_nothing_to_write_returns_the_record_as_read(store: SealedStore) -> None:
    await cas.update(store, KEY, TenantIndex, appending("a"), contended="busy")

    async def unchanged(index: TenantIndex | None) -> None:
        return None

    result = await cas.update(store, KEY, TenantIndex, unchanged, contended="busy")
    assert not result.written
    assert result.record == TenantIndex(connection_ids=["a"]) and result.version == 1
    missing = await cas.update(
        store, "{tenant_t2}:connections", TenantIndex, unchanged, contended=""
    )
    assert missing == cas.Updated(None, 0, written=False)


async def test_a_change_that_raises_writes_nothing(store: SealedStore) -> None:
    async def refuse(index: TenantIndex | None) -> TenantIndex:
        raise NotFound("no such thing")

    with pytest.raises(NotFound):
        await cas.update(store, KEY, TenantIndex, refuse, contended="busy")
    assert await store.get(KEY) is None


async def test_delete_on_the_version_read(store: SealedStore) -> None:
    await cas.update(store, KEY, TenantIndex, appending("a"), contended="busy")

    async def delete(index: TenantIndex | None) -> cas.Delete:
        return cas.DELETE

    result = await cas.update(store, KEY, TenantIndex, delete, contended="busy")
    assert result.written and result.record is None
    assert await store.get(KEY) is None
    again = await cas.update(store, KEY, TenantIndex, delete, contended="busy")
    assert not again.written  # nothing left to delete


async def test_a_fenced_write_needs_its_lock(store: SealedStore) -> None:
    lock = KEY + "#lock"
    owner = await store.acquire(lock, 10)
    assert owner is not None
    fence = Fence(lock, owner)
    result = await cas.update(
        store, KEY, TenantIndex, appending("a"), contended="busy", fence=fence
    )
    assert result.written
    await store.release(lock, owner)
    with pytest.raises(LockLost):
        await cas.update(store, KEY, TenantIndex, appending("b"), contended="busy", fence=fence)
    assert await records.load(store, KEY, TenantIndex) == (TenantIndex(connection_ids=["a"]), 1)
