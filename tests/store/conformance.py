# Use: `from tests.store.conformance import StoreConformance` then
# `class TestMyBackend(StoreConformance)` with an async `store` fixture yielding a fresh Store.
"""One conformance suite for every `Store` backend (after Vault's `physical.ExerciseBackend`).

The `store` fixture a backend's test module provides must yield a store whose keyspace is
EMPTY (a fresh file, a fresh Redis namespace): the due-time index is global and some tests
assert on all of it. Tests still build their keys from a per-test unique id, so leftovers of a
crashed run in a shared namespace cannot make another test pass by accident.

A backend whose due-time index is partitioned (earliest first only within a partition) sets
`ordered_due = False`; the due tests then check which items come back, not their order.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import ClassVar

import pytest

from broker.errors import LockLost, VersionConflict
from broker.store import keys
from broker.store.base import Entry, Fence, Store
from tests.store.conformance_rates import RateLimitConformance

# Short enough to keep the suite fast, long enough that a loaded CI box does not expire a key
# between the write and the first read.
TTL = 0.4
PAST_TTL = TTL + 0.25


def uid() -> str:
    return uuid.uuid4().hex[:12]


class StoreConformance(RateLimitConformance):
    """Base class: subclass it as `Test<Backend>` and provide a `store` fixture."""

    ordered_due: ClassVar[bool] = True

    async def test_implements_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        await store.ping()

    async def test_get_missing(self, store: Store) -> None:
        assert await store.get(keys.connection(f"conn_{uid()}")) is None
        assert await store.get(keys.oauth_app(uid(), "tenant-1")) is None

    async def test_put_get_round_trip_and_versions(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        assert await store.put(key, b"one") == 1
        assert await store.get(key) == (b"one", 1)
        assert await store.put(key, b"two") == 2
        assert await store.put(key, b"three", expect_version=2) == 3
        assert await store.get(key) == (b"three", 3)

    async def test_keys_are_independent(self, store: Store) -> None:
        a, b = keys.connection(f"conn_{uid()}"), keys.connection(f"conn_{uid()}")
        await store.put(a, b"a")
        await store.put(b, b"b")
        await store.put(b, b"b2")
        assert await store.get(a) == (b"a", 1)
        assert await store.get(b) == (b"b2", 2)

    async def test_create_only_conflicts_on_existing_key(self, store: Store) -> None:
        key = keys.oauth_app(uid())
        assert await store.put(key, b"first", expect_version=0) == 1
        with pytest.raises(VersionConflict):
            await store.put(key, b"second", expect_version=0)
        assert await store.get(key) == (b"first", 1)

    async def test_cas_with_stale_version_changes_nothing(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        await store.put(key, b"v1")
        assert await store.put(key, b"v2", expect_version=1) == 2
        with pytest.raises(VersionConflict):
            await store.put(key, b"stale", expect_version=1)
        with pytest.raises(VersionConflict):
            await store.put(key, b"future", expect_version=7)
        assert await store.get(key) == (b"v2", 2)

    async def test_cas_on_missing_key_with_positive_version_conflicts(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        with pytest.raises(VersionConflict):
            await store.put(key, b"x", expect_version=1)
        assert await store.get(key) is None

    async def test_delete_without_expect_version(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        assert await store.delete(key) is False
        await store.put(key, b"x")
        await store.put(key, b"y")
        assert await store.delete(key) is True
        assert await store.get(key) is None
        assert await store.delete(key) is False
        # A deleted key is missing, so it starts over at version 1.
        assert await store.put(key, b"again", expect_version=0) == 1

    async def test_delete_with_expect_version(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        await store.put(key, b"x")
        await store.put(key, b"y")
        with pytest.raises(VersionConflict):
            await store.delete(key, expect_version=1)
        assert await store.get(key) == (b"y", 2)
        with pytest.raises(VersionConflict):
            await store.delete(key, expect_version=0)
        assert await store.delete(key, expect_version=2) is True
        assert await store.get(key) is None
        with pytest.raises(VersionConflict):
            await store.delete(key, expect_version=2)
        # Missing has version 0: "delete if still absent" matches and deletes nothing.
        assert await store.delete(key, expect_version=0) is False

    async def test_concurrent_cas_increments_are_exact(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        writers, increments = 100, 25
        await store.put(key, b"0", expect_version=0)

        async def writer() -> None:
            conflicts = 0
            for _ in range(increments):
                while True:
                    current = await store.get(key)
                    assert current is not None
                    value, version = current
                    try:
                        await store.put(key, str(int(value) + 1).encode(), expect_version=version)
                        break
                    except VersionConflict:
                        conflicts += 1
                        # Capped, jittered exponential backoff, as a real caller would: without
                        # it 100 writers in lockstep lose almost every attempt (8x slower).
                        backoff = min(0.05, 0.001 * 2 ** min(conflicts, 6))
                        await asyncio.sleep(random.uniform(0, backoff))

        await asyncio.gather(*(writer() for _ in range(writers)))
        total = writers * increments
        assert await store.get(key) == (str(total).encode(), total + 1)

    async def test_put_ttl_expires(self, store: Store) -> None:
        read, taken = keys.oauth_state(uid()), keys.oauth_state(uid())
        assert await store.put_ttl(read, b"state", TTL) == 1
        assert await store.put_ttl(taken, b"state", TTL) == 1
        assert await store.get(read) == (b"state", 1)
        await asyncio.sleep(PAST_TTL)
        assert await store.get(read) is None
        assert await store.take(taken) is None
        # Expired is missing: it can be created again, from version 1.
        assert await store.put(read, b"new", expect_version=0) == 1

    async def test_put_ttl_bumps_version(self, store: Store) -> None:
        key = keys.connect_session(uid())
        await store.put(key, b"a")
        assert await store.put_ttl(key, b"b", 30) == 2
        assert await store.get(key) == (b"b", 2)

    async def test_put_clears_ttl(self, store: Store) -> None:
        key = keys.connect_session(uid())
        await store.put_ttl(key, b"short-lived", TTL)
        assert await store.put(key, b"kept", expect_version=1) == 2
        await asyncio.sleep(PAST_TTL)
        assert await store.get(key) == (b"kept", 2)

    async def test_put_many_versions_and_conflicts(self, store: Store) -> None:
        run = uid()
        a, b, c, d = (keys.connection(f"conn_{run}_{n}") for n in "abcd")
        await store.put(a, b"a1")
        await store.put(b, b"b1")
        await store.put(b, b"b2")
        assert await store.put_many([]) == []
        results = await store.put_many(
            [
                (a, b"a2", 1),  # matches
                (b, b"stale", 1),  # b is at 2: conflict, nothing written
                (c, b"c1", 0),  # create only
                (d, b"d1", None),  # blind
                (a, b"a3", 2),  # same key again: sees the write before it
                (c, b"again", 0),  # c exists now: conflict
            ]
        )
        assert results == [2, None, 1, 1, 3, None]
        assert await store.get(a) == (b"a3", 3)
        assert await store.get(b) == (b"b2", 2)
        assert await store.get(c) == (b"c1", 1)
        assert await store.get(d) == (b"d1", 1)
        assert await store.put_many([(keys.connection(f"conn_{run}_e"), b"x", 4)]) == [None]
        assert await store.get(keys.connection(f"conn_{run}_e")) is None

    async def test_put_many_rejects_negative_versions(self, store: Store) -> None:
        with pytest.raises(ValueError, match="expect_version"):
            await store.put_many([(keys.connection(f"conn_{uid()}"), b"x", -1)])

    async def test_put_many_clears_ttl_by_default(self, store: Store) -> None:
        key = keys.connect_session(uid())
        await store.put_ttl(key, b"short-lived", TTL)
        assert await store.put_many([(key, b"kept", 1)]) == [2]
        await asyncio.sleep(PAST_TTL)
        assert await store.get(key) == (b"kept", 2)

    async def test_put_many_keep_ttl_still_expires(self, store: Store) -> None:
        run = uid()
        expiring, durable = keys.oauth_state(run), keys.connection(f"conn_{run}")
        await store.put_ttl(expiring, b"one-time", TTL)
        await store.put(durable, b"durable")
        results = await store.put_many(
            [(expiring, b"resealed", 1), (durable, b"resealed", 1)], keep_ttl=True
        )
        assert results == [2, 2]
        assert await store.get(expiring) == (b"resealed", 2)
        await asyncio.sleep(PAST_TTL)
        assert await store.get(expiring) is None
        assert await store.take(expiring) is None
        assert await store.get(durable) == (b"resealed", 2)

    async def test_put_many_on_expired_key_conflicts(self, store: Store) -> None:
        key = keys.oauth_state(uid())
        await store.put_ttl(key, b"one-time", TTL)
        await asyncio.sleep(PAST_TTL)
        # expired is missing (version 0), so a rewrite of what was read before must lose
        assert await store.put_many([(key, b"late", 1)], keep_ttl=True) == [None]
        assert await store.get(key) is None

    async def test_put_many_large_batch(self, store: Store) -> None:
        run = uid()
        names = [keys.connection(f"conn_{run}_{i:04d}") for i in range(1000)]
        assert await store.put_many([(k, b"v1", 0) for k in names]) == [1] * 1000
        stale = set(names[::10])
        await _put_all(store, {k: b"changed" for k in stale})
        results = await store.put_many([(k, b"v2", 1) for k in names], keep_ttl=True)
        assert results == [None if k in stale else 2 for k in names]
        assert await _scan_all(store, keys.CONNECTION_PREFIX + run) == {
            k: b"changed" if k in stale else b"v2" for k in names
        }

    async def test_take_returns_value_once(self, store: Store) -> None:
        key = keys.oauth_state(uid())
        await store.put_ttl(key, b"one-time", 30)
        assert await store.take(key) == b"one-time"
        assert await store.take(key) is None
        assert await store.get(key) is None

    async def test_take_missing_is_none(self, store: Store) -> None:
        assert await store.take(keys.oauth_state(uid())) is None

    async def test_take_of_plain_put(self, store: Store) -> None:
        key = keys.connect_session(uid())
        await store.put(key, b"plain")
        assert await store.take(key) == b"plain"
        assert await store.get(key) is None

    async def test_concurrent_take_has_exactly_one_winner(self, store: Store) -> None:
        key = keys.oauth_state(uid())
        await store.put_ttl(key, b"prize", 30)
        results = await asyncio.gather(*(store.take(key) for _ in range(50)))
        assert results.count(b"prize") == 1
        assert results.count(None) == 49

    async def test_lock_owner_semantics(self, store: Store) -> None:
        key = keys.refresh_lock(f"conn_{uid()}")
        token = await store.acquire(key, 30)
        assert isinstance(token, str)
        assert token
        assert await store.acquire(key, 30) is None
        assert await store.release(key, "not-the-owner") is False
        assert await store.acquire(key, 30) is None
        assert await store.release(key, token) is True
        assert await store.release(key, token) is False
        again = await store.acquire(key, 30)
        assert again is not None
        assert again != token
        assert await store.release(key, again) is True

    async def test_lock_expires(self, store: Store) -> None:
        key = keys.refresh_lock(f"conn_{uid()}")
        first = await store.acquire(key, TTL)
        assert first is not None
        assert await store.acquire(key, 30) is None
        await asyncio.sleep(PAST_TTL)
        second = await store.acquire(key, 30)
        assert second is not None
        # The expired holder cannot free the lock its successor now holds.
        assert await store.release(key, first) is False
        assert await store.acquire(key, 30) is None
        assert await store.release(key, second) is True

    async def test_concurrent_acquire_has_exactly_one_winner(self, store: Store) -> None:
        key = keys.refresh_lock(f"conn_{uid()}")
        tokens = await asyncio.gather(*(store.acquire(key, 30) for _ in range(50)))
        assert len([t for t in tokens if t is not None]) == 1

    async def test_locks_are_per_key(self, store: Store) -> None:
        a, b = keys.refresh_lock(f"conn_{uid()}"), keys.refresh_lock(f"conn_{uid()}")
        assert await store.acquire(a, 30) is not None
        assert await store.acquire(b, 30) is not None

    async def test_fenced_put_writes_while_its_owner_holds_the_lock(self, store: Store) -> None:
        conn = f"conn_{uid()}"
        key, lock = keys.connection(conn), keys.refresh_lock(conn)
        await store.put(key, b"v1")
        owner = await store.acquire(lock, 30)
        assert owner is not None
        fence = Fence(lock, owner)
        assert await store.put_fenced(key, b"v2", 1, fence) == 2
        assert await store.get(key) == (b"v2", 2)
        with pytest.raises(VersionConflict):
            await store.put_fenced(key, b"stale", 1, fence)
        assert await store.put_fenced(key, b"v3", None, fence) == 3
        fresh = keys.connection(f"conn_{uid()}")
        fresh_lock = keys.refresh_lock(keys.record_id(fresh))
        fresh_owner = await store.acquire(fresh_lock, 30)
        assert fresh_owner is not None
        assert await store.put_fenced(fresh, b"new", 0, Fence(fresh_lock, fresh_owner)) == 1
        # the write leaves the lock as it was: still held, released by its owner
        assert await store.acquire(lock, 30) is None
        assert await store.release(lock, owner) is True
        assert await store.get(key) == (b"v3", 3)

    async def test_fenced_put_is_refused_to_anyone_but_the_owner(self, store: Store) -> None:
        conn = f"conn_{uid()}"
        key, lock = keys.connection(conn), keys.refresh_lock(conn)
        await store.put(key, b"v1")
        with pytest.raises(LockLost):  # a lock nobody took
            await store.put_fenced(key, b"x", 1, Fence(lock, "nobody"))
        owner = await store.acquire(lock, 30)
        assert owner is not None
        with pytest.raises(LockLost):
            await store.put_fenced(key, b"x", 1, Fence(lock, "not-the-owner"))
        with pytest.raises(LockLost):  # the lock is checked before the version
            await store.put_fenced(key, b"x", 7, Fence(lock, "not-the-owner"))
        assert await store.get(key) == (b"v1", 1)

    async def test_fenced_put_is_refused_once_the_lock_expired(self, store: Store) -> None:
        conn = f"conn_{uid()}"
        key, lock = keys.connection(conn), keys.refresh_lock(conn)
        await store.put(key, b"v1")
        first = await store.acquire(lock, TTL)
        assert first is not None
        await asyncio.sleep(PAST_TTL)
        with pytest.raises(LockLost):  # expired, nobody took it over yet
            await store.put_fenced(key, b"late", 1, Fence(lock, first))
        second = await store.acquire(lock, 30)
        assert second is not None
        with pytest.raises(LockLost):  # and now another holder has it
            await store.put_fenced(key, b"late", 1, Fence(lock, first))
        assert await store.get(key) == (b"v1", 1)
        assert await store.put_fenced(key, b"v2", 1, Fence(lock, second)) == 2

    async def test_fenced_put_takes_only_the_lock_beside_its_record(self, store: Store) -> None:
        key = keys.connection(f"conn_{uid()}")
        other = keys.refresh_lock(f"conn_{uid()}")
        with pytest.raises(ValueError, match="fencing lock"):
            await store.put_fenced(key, b"x", None, Fence(other, "t"))
        assert await store.get(key) is None

    async def test_scan_pages_over_many_keys_exactly_once(self, store: Store) -> None:
        run = uid()
        count, page_size = 10_000, 250
        expected = {keys.connection(f"conn_{run}_{i:05d}"): str(i).encode() for i in range(count)}
        rewritten = set(list(expected)[::7])  # these end at version 2
        others = [keys.oauth_app(f"{run}_{i}") for i in range(50)]
        others += [keys.connect_session(f"{run}_{i}") for i in range(50)]
        await _put_all(store, {**expected, **{k: b"other" for k in others}})
        await _put_all(store, {k: expected[k] for k in rewritten})

        seen: dict[str, Entry] = {}
        pages = 0
        cursor: str | None = None
        while True:
            page = await store.scan(keys.CONNECTION_PREFIX, cursor, page_size)
            pages += 1
            assert len(page.entries) <= page_size
            for entry in page.entries:
                assert entry.key not in seen, f"{entry.key} returned twice"
                seen[entry.key] = entry
            cursor = page.cursor
            if cursor is None:
                break
            assert pages < count, "scan does not terminate"
        assert set(seen) == set(expected)
        for key, entry in seen.items():
            assert entry.value == expected[key]
            assert entry.version == (2 if key in rewritten else 1)

    async def test_scan_of_empty_prefix_completes(self, store: Store) -> None:
        await store.put(keys.connection(f"conn_{uid()}"), b"x")
        cursor: str | None = None
        for _ in range(100):
            page = await store.scan(keys.OAUTH_STATE_PREFIX, cursor, 10)
            assert page.entries == []
            cursor = page.cursor
            if cursor is None:
                return
        pytest.fail("scan of a prefix with no keys never completed")

    async def test_scan_skips_expired_keys(self, store: Store) -> None:
        run = uid()
        live, dying = keys.oauth_state(f"{run}_live"), keys.oauth_state(f"{run}_dying")
        await store.put_ttl(live, b"live", 30)
        await store.put_ttl(dying, b"dying", TTL)
        await asyncio.sleep(PAST_TTL)
        assert await _scan_all(store, keys.OAUTH_STATE_PREFIX + run) == {live: b"live"}

    async def test_due_index(self, store: Store) -> None:
        run = uid()
        a, b, c, d = (keys.connection(f"conn_{run}_{n}") for n in "abcd")
        now = time.time()
        await store.schedule(a, now - 30)
        await store.schedule(b, now - 10)
        await store.schedule(c, now - 20)
        await store.schedule(d, now + 100)
        a_at, b_at, c_at, d_at = at(now - 30), at(now - 10), at(now - 20), at(now + 100)

        await self._assert_due(store, now, 10, [(a, a_at), (c, c_at), (b, b_at)])
        await self._assert_due(store, now, 2, [(a, a_at), (c, c_at), (b, b_at)])

        await store.schedule(a, now + 50)  # rescheduling replaces the earlier time
        a_at = at(now + 50)
        await self._assert_due(store, now, 10, [(c, c_at), (b, b_at)])
        await store.unschedule(c)
        await store.unschedule(keys.connection(f"conn_{run}_never"))
        await self._assert_due(store, now, 10, [(b, b_at)])
        await self._assert_due(store, now + 200, 10, [(b, b_at), (a, a_at), (d, d_at)])
        await self._assert_due(store, now - 60, 10, [])

    async def test_due_limit_over_many_items(self, store: Store) -> None:
        run, now = uid(), time.time()
        scheduled = [(keys.connection(f"conn_{run}_{i:03d}"), now - 1000 + i) for i in range(120)]
        await asyncio.gather(*(store.schedule(k, t) for k, t in scheduled))
        await store.schedule(keys.connection(f"conn_{run}_later"), now + 1000)
        expected = [(k, at(t)) for k, t in scheduled]
        await self._assert_due(store, now, 50, expected)
        await self._assert_due(store, now, 500, expected)

    async def _assert_due(
        self, store: Store, now: float, limit: int, due_in_order: list[tuple[str, object]]
    ) -> None:
        """`due(now, limit)` returns `limit` of the due items, earliest first if ordered."""
        items = [(i.key, i.at) for i in await store.due(now, limit)]
        if self.ordered_due:
            assert items == due_in_order[:limit]
        else:
            assert len(items) == min(limit, len(due_in_order))
            assert len({k for k, _ in items}) == len(items), "an item returned twice"
            assert all(item in due_in_order for item in items)

    async def test_index_orders_members_by_their_bytes(self, store: Store) -> None:
        index = f"ordered:{uid()}"
        members = ["b", "a", "ba", "B", "a0", "é", "z", "b"]  # "b" twice: added once
        for member in members:
            await store.index_add(index, member, 30)
        ascending = sorted(set(members), key=str.encode)
        assert ascending == ["B", "a", "a0", "b", "ba", "z", "é"]
        assert await store.index_range(index, limit=100) == ascending
        assert await store.index_range(index, limit=100, descending=True) == ascending[::-1]
        assert await store.index_range(index, after="a", limit=100) == ["a0", "b", "ba", "z", "é"]
        assert await store.index_range(index, after="a", before="ba", limit=100) == ["a0", "b"]
        assert await store.index_range(index, before="b", limit=2, descending=True) == ["a0", "a"]
        assert await store.index_range(index, after="a0", before="b", limit=100) == []
        assert await store.index_range(index, after="é", limit=100) == []
        assert await store.index_range(f"ordered:{uid()}", limit=100) == []  # never added to

    async def test_index_pages_in_both_directions(self, store: Store) -> None:
        index = f"ordered:{uid()}"
        members = [f"evt_{i:05d}" for i in range(250)]
        await asyncio.gather(*(store.index_add(index, m, 30) for m in members))
        for descending in (False, True):
            seen: list[str] = []
            while page := await store.index_range(
                index,
                after=None if descending or not seen else seen[-1],
                before=seen[-1] if descending and seen else None,
                limit=40,
                descending=descending,
            ):
                assert len(page) <= 40
                seen.extend(page)
            assert seen == (members[::-1] if descending else members)

    async def test_indexes_are_separate(self, store: Store) -> None:
        run = uid()
        await store.index_add(f"audit:{run}-a", "1", 30)
        await store.index_add(f"audit:{run}-b", "2", 30)
        assert await store.index_range(f"audit:{run}-a") == ["1"]
        assert await store.index_range(f"audit:{run}-b") == ["2"]
        # an index is not a record: a record scan never lists it
        assert not [key for key in await _scan_all(store, "") if run in key]

    async def test_index_trim_removes_what_sorts_below(self, store: Store) -> None:
        index = f"ordered:{uid()}"
        for member in ("10", "11", "20", "21", "3"):
            await store.index_add(index, member, 30)
        assert await store.index_trim(index, "2") == 2
        assert await store.index_range(index) == ["20", "21", "3"]
        assert await store.index_trim(index, "2") == 0
        assert await store.index_trim(index, "20") == 0  # strictly below
        assert await store.index_trim(f"ordered:{uid()}", "z") == 0

    async def test_index_members_expire_after_their_ttl(self, store: Store) -> None:
        index = f"ordered:{uid()}"
        await store.index_add(index, "short", TTL)
        await store.index_add(index, "also-short", TTL)
        assert await store.index_range(index) == ["also-short", "short"]
        await asyncio.sleep(PAST_TTL)
        assert await store.index_range(index) == []
        # a longer ttl is never cut short by a later, shorter add
        await store.index_add(index, "long", 30)
        await store.index_add(index, "long", TTL)
        await asyncio.sleep(PAST_TTL)
        assert await store.index_range(index) == ["long"]

    async def test_index_names_and_members_are_checked(self, store: Store) -> None:
        for bad_index in ("", "with{brace", "with}brace"):
            with pytest.raises(ValueError, match="index name"):
                await store.index_add(bad_index, "m", 30)
            with pytest.raises(ValueError, match="index name"):
                await store.index_range(bad_index)
        with pytest.raises(ValueError, match="member"):
            await store.index_add("ordered", "", 30)
        with pytest.raises(ValueError, match="ttl"):
            await store.index_add("ordered", "m", 0)
        with pytest.raises(ValueError, match="limit"):
            await store.index_range("ordered", limit=0)

    async def test_binary_values_round_trip(self, store: Store) -> None:
        every_byte = bytes(range(256))
        run = uid()
        plain, ttl = keys.connection(f"conn_{run}"), keys.oauth_state(run)
        await store.put(plain, every_byte)
        assert await store.get(plain) == (every_byte, 1)
        assert await _scan_all(store, plain) == {plain: every_byte}
        await store.put_ttl(ttl, every_byte[::-1], 30)
        assert await store.take(ttl) == every_byte[::-1]
        empty = keys.connection(f"conn_{run}_empty")
        await store.put(empty, b"")
        assert await store.get(empty) == (b"", 1)


async def _put_all(store: Store, items: dict[str, bytes], chunk: int = 500) -> None:
    pending = list(items.items())
    for start in range(0, len(pending), chunk):
        await asyncio.gather(*(store.put(k, v) for k, v in pending[start : start + chunk]))


async def _scan_all(store: Store, prefix: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    cursor: str | None = None
    while True:
        page = await store.scan(prefix, cursor, 100)
        found.update((e.key, e.value) for e in page.entries)
        if (cursor := page.cursor) is None:
            return found


def at(t: float) -> object:
    # A backend may keep times as text or scores; a millisecond is the precision that matters.
    return pytest.approx(t, abs=1e-3)
