"""The sealed layer's rewrap (broker.store.rewrap) on real stores: SQLite files and a
redis-server this module starts. Writers race the rewrap; a rewrap process is SIGKILLed
halfway and run again; unreadable values are reported, never dropped."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from redis.asyncio import Redis

from broker.crypto import key_id_of, save_keyring
from broker.errors import VersionConflict
from broker.store import keys, open_store
from broker.store.base import PutItem, ScanPage, Store
from broker.store.rewrap import UNSEALED, count_by_key, rewrap_all
from broker.store.sealed import SealedStore
from tests.store.redis_servers import RedisServer, redis_server_fixture
from tests.store.rewrap_support import BOTH, OLD, cli, cli_run, fill, key_ids, record, sealed

RECORDS = 20_000
WRITERS = 8
_dbs = itertools.count()


redis_server = redis_server_fixture()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"redis://127.0.0.1:{server.port}/{next(_dbs) % 15 + 1}"  # a db per test


@pytest.fixture
async def raw(store_url: str) -> AsyncIterator[Store]:
    if store_url.startswith("redis"):
        client = Redis.from_url(store_url)
        await client.flushdb()
        await client.aclose()
    store = await open_store(store_url)
    yield store
    await store.close()


# --- 8 writers racing the rewrap ------------------------------------------------------------


async def test_rewrap_under_concurrent_writers_loses_no_update(raw: Store, store_url: str) -> None:
    names = await fill(sealed(raw, OLD), RECORDS)
    tally: Counter[str] = Counter()
    stop = asyncio.Event()
    # the writers are brokers that reloaded the keyring: separate store connections
    writer_stores = [await open_store(store_url) for _ in range(WRITERS)]

    async def writer(seed: int, store: SealedStore) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            key = rng.choice(names)
            while True:
                found = await store.get(key)
                assert found is not None
                doc = json.loads(found[0])
                doc["n"] += 1
                try:
                    await store.put(key, json.dumps(doc).encode(), expect_version=found[1])
                    break
                except VersionConflict:
                    await asyncio.sleep(0)
            tally[key] += 1

    tasks = [
        asyncio.create_task(writer(seed, sealed(s, BOTH))) for seed, s in enumerate(writer_stores)
    ]
    try:
        await asyncio.sleep(0.1)
        before = tally.total()
        rewrapper = await open_store(store_url)
        try:
            # small pages: more round trips for the writers to land between
            summary = await rewrap_all(sealed(rewrapper, BOTH), batch=100)
        finally:
            await rewrapper.close()
        during = tally.total() - before
        await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for s in writer_stores:
            await s.close()

    # SQLite writers pay an fsync per CAS and queue for the file lock: tens to hundreds of
    # writes land inside its 0.3-0.6 s rewrap; on Redis over a thousand
    assert during >= 20, "the writers did not overlap the rewrap"
    assert summary.ok, summary.failed
    assert summary.scanned == RECORDS
    assert summary.rewrapped + summary.skipped == RECORDS
    assert await key_ids(raw) == {"k-new": RECORDS}
    reader = sealed(raw, BOTH)
    for start in range(0, RECORDS, 1000):
        found = await asyncio.gather(*(reader.get(k) for k in names[start : start + 1000]))
        for key, got in zip(names[start : start + 1000], found, strict=True):
            assert got is not None
            assert json.loads(got[0])["n"] == tally[key], f"lost update on {key}"


class _Interfering:
    """A store on which, just before the rewrap's first batch write, three other writers act:
    a stale replica (old keyring) rewrites one record, a current one another, a third deletes
    one. Everything else passes straight through."""

    def __init__(self, inner: Store, names: Sequence[str]) -> None:
        self.inner = inner
        self.stale, self.fresh, self.deleted = names[:3]
        self.fired = False

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        return await self.inner.scan(prefix, cursor, limit)

    async def get(self, key: str) -> tuple[bytes, int] | None:
        return await self.inner.get(key)

    async def put_many(
        self, items: Sequence[PutItem], *, keep_ttl: bool = False
    ) -> list[int | None]:
        if not self.fired:
            self.fired = True
            await sealed(self.inner, OLD).put(self.stale, b'{"by": "stale replica"}')
            await sealed(self.inner, BOTH).put(self.fresh, b'{"by": "current replica"}')
            await self.inner.delete(self.deleted)
        return await self.inner.put_many(items, keep_ttl=keep_ttl)


async def test_a_concurrent_write_wins_and_is_resealed_never_overwritten(
    tmp_path: Path,
) -> None:
    raw = await open_store(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        names = await fill(sealed(raw, OLD), 50)
        meddler = _Interfering(raw, names)
        summary = await rewrap_all(SealedStore(meddler, lambda: BOTH))  # type: ignore[arg-type]
        assert summary.ok
        assert (summary.conflicts, summary.vanished) == (3, 1)
        assert (summary.rewrapped, summary.skipped) == (48, 1)
        reader = sealed(raw, BOTH)
        assert await reader.get(names[0]) == (b'{"by": "stale replica"}', 3)
        assert await reader.get(names[1]) == (b'{"by": "current replica"}', 2)
        assert await reader.get(names[2]) is None
        assert await key_ids(raw) == {"k-new": 49}
    finally:
        await raw.close()


# --- killed halfway, then run again ---------------------------------------------------------


def progress_done(line: str) -> int | None:
    # "rewrap: 1,200/20,000 records (6%), ..."
    if not line.startswith("rewrap: ") or "/" not in line or "records (" not in line:
        return None
    return int(line.removeprefix("rewrap: ").split("/")[0].replace(",", ""))


async def test_rewrap_killed_halfway_then_rerun_completes(
    raw: Store, store_url: str, tmp_path: Path
) -> None:
    keyring_file = tmp_path / "keyring.json"
    save_keyring(keyring_file, BOTH)
    names = await fill(sealed(raw, OLD), RECORDS)

    proc = cli(store_url, keyring_file, "rewrap", "--batch", "50", "--progress-every", "0.02")
    assert proc.stderr is not None
    killed_at = None
    for line in proc.stderr:
        done = progress_done(line)
        if done is not None and done >= RECORDS // 5:
            proc.send_signal(signal.SIGKILL)
            killed_at = done
            break
    proc.wait(30)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, "not killed mid-way"

    partial = await key_ids(raw)
    assert partial.total() == RECORDS
    assert 0 < partial["k-new"] < RECORDS, partial

    code, out, err = cli_run(store_url, keyring_file, "rewrap")
    assert code == 0, err
    assert f"{partial['k-new']:,} skipped (already primary)" in out
    assert f"{partial['k-old']:,} rewrapped" in out
    assert await key_ids(raw) == {"k-new": RECORDS}
    reader = sealed(raw, BOTH)
    for i in random.sample(range(RECORDS), 500):
        assert await reader.get(names[i]) == (record(i), 2)

    code, out, _ = cli_run(store_url, keyring_file, "rewrap")  # idempotent
    assert code == 0
    assert "nothing to rewrap" in out


# --- TTL records ------------------------------------------------------------------------------


async def test_ttl_records_still_expire_after_rewrap(raw: Store) -> None:
    old = sealed(raw, OLD)
    states = [keys.oauth_state(f"s{i}") for i in range(300)]
    sessions = [keys.connect_session(f"t{i}") for i in range(300)]
    durable = await fill(old, 300)
    # long enough that a loaded machine still writes and rewraps all 600 before they lapse
    ttl = 6.0
    for key in states + sessions:
        await old.put_ttl(key, b"one-time", ttl)
    lapse = asyncio.get_running_loop().time() + ttl  # the last one's, at the latest

    dry = await rewrap_all(sealed(raw, BOTH), dry_run=True)
    assert (dry.rewrapped, dry.scanned) == (900, 900)
    assert await key_ids(raw) == {"k-old": 900}
    summary = await rewrap_all(sealed(raw, BOTH), batch=128)
    assert summary.rewrapped == 900
    assert await key_ids(raw) == {"k-new": 900}
    reader = sealed(raw, BOTH)
    assert await reader.get(states[0]) == (b"one-time", 2)

    await asyncio.sleep(lapse - asyncio.get_running_loop().time() + 0.3)
    assert await key_ids(raw) == {"k-new": 300}
    assert await reader.take(states[1]) is None
    assert await reader.get(sessions[-1]) is None
    assert await reader.get(durable[-1]) == (record(299), 2)


async def test_rewrap_reloads_scripts_a_restarted_redis_forgot(
    redis_server: RedisServer,
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    raw = await open_store(url)
    client = Redis.from_url(url)
    try:
        await client.flushdb()
        await fill(sealed(raw, OLD), 100)
        await client.script_flush()
        summary = await rewrap_all(sealed(raw, BOTH))
        assert (summary.rewrapped, summary.ok) == (100, True)
        assert await key_ids(raw) == {"k-new": 100}
    finally:
        await client.flushdb()
        await client.aclose()
        await raw.close()


async def test_unreadable_values_are_reported_not_dropped(tmp_path: Path) -> None:
    raw = await open_store(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        await fill(sealed(raw, OLD), 5)
        await raw.put(keys.connection("conn_plain"), b"not sealed")
        good = await raw.get(keys.connection("conn_000001"))
        assert good is not None
        await raw.put(keys.connection("conn_copied"), good[0])  # AAD names another record
        summary = await rewrap_all(sealed(raw, BOTH))
        assert summary.failed == {
            "not a sealed value": 1,
            "failed authentication under key k-old": 1,
        }
        assert summary.examples["not a sealed value"] == ["{conn_plain}:record"]
        assert (summary.rewrapped, summary.scanned) == (5, 7)
        assert await raw.get(keys.connection("conn_plain")) == (b"not sealed", 1)
        assert key_id_of((await raw.get(keys.connection("conn_copied")) or (b"", 0))[0]) == (
            "k-old"
        )
    finally:
        await raw.close()


async def test_count_by_key_reads_the_key_id_each_header_names(tmp_path: Path) -> None:
    raw = await open_store(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        await fill(sealed(raw, OLD), 3)
        await sealed(raw, BOTH).put(keys.connection("conn_new"), b"{}")
        await raw.put(keys.connection("conn_plain"), b"not sealed")
        await raw.put(keys.connection("conn_bad_id"), b"1.no way.AAAA")
        await raw.put(keys.connection("conn_v9"), b"9.k-old.AAAA")
        # no keyring is needed: a key nobody holds any more is still counted by its name
        await raw.put(keys.connection("conn_gone"), b"1.k-gone.AAAA")
        counts = await count_by_key(sealed(raw, BOTH), batch=2)
        assert counts == {"k-old": 3, "k-new": 1, "k-gone": 1, UNSEALED: 3}
    finally:
        await raw.close()
