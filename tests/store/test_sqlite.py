"""SqliteStore: the shared conformance suite, plus what only a file-backed store has."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.errors import StoreUnavailable
from broker.store import keys
from broker.store.sqlite import SqliteStore
from broker.store.sqlite.scan import _prefix_end
from tests.store.conformance import StoreConformance

ROOT = Path(__file__).resolve().parents[2]


class TestSqliteConformance(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteStore]:
        store = await SqliteStore.open(str(tmp_path / "store.db"))
        yield store
        await store.close()


# Each child process opens the same file and does CAS increments from several tasks.
CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from broker.errors import VersionConflict
    from broker.store.sqlite import SqliteStore

    async def main(path, key, tasks, increments, start_at):
        store = await SqliteStore.open(path)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.time()

        async def worker():
            for _ in range(increments):
                while True:
                    value, version = await store.get(key)
                    try:
                        await store.put(key, b"%d" % (int(value) + 1), expect_version=version)
                        break
                    except VersionConflict:
                        await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(tasks)))
        print(began, time.time())
        await store.close()

    path, key, tasks, increments, start_at = sys.argv[1:]
    asyncio.run(main(path, key, int(tasks), int(increments), float(start_at)))
    """
)


async def test_two_processes_cas_on_one_file_is_exact(tmp_path: Path) -> None:
    path, key = str(tmp_path / "shared.db"), keys.connection("conn_multiprocess")
    store = await SqliteStore.open(path)
    await store.put(key, b"0", expect_version=0)
    processes, tasks, increments = 2, 4, 100
    # A common start time, so the processes' increments overlap instead of running in turn.
    start_at = time.time() + 1.0
    args = [path, key, str(tasks), str(increments), str(start_at)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    windows = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
        began, ended = map(float, out.split())
        windows.append((began, ended))
    # Otherwise the test would prove nothing about cross-process safety.
    assert max(b for b, _ in windows) < min(e for _, e in windows), "processes did not overlap"
    total = processes * tasks * increments
    assert await store.get(key) == (str(total).encode(), total + 1)
    await store.close()


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path, key = str(tmp_path / "durable.db"), keys.connection("conn_durable")
    store = await SqliteStore.open(path)
    await store.put(key, b"kept")
    await store.put(key, b"kept again")
    await store.schedule(key, 123.0)
    await store.close()

    store = await SqliteStore.open(path)
    assert await store.get(key) == (b"kept again", 2)
    assert await store.put(key, b"third", expect_version=2) == 3
    assert [(i.key, i.at) for i in await store.due(200.0, 10)] == [(key, 123.0)]
    await store.close()


async def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = await SqliteStore.open(str(path))
    await store.put(keys.connection("conn_wal"), b"x")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "wal.db-wal").exists()
    await store.close()


async def test_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    store = await SqliteStore.open(str(path))
    await store.close()
    assert path.is_file()


async def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "closed.db"))
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get(keys.connection("conn_x"))


async def test_unopenable_path_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        await SqliteStore.open(str(tmp_path))  # a directory
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(StoreUnavailable):
        await SqliteStore.open(str(not_a_db))


async def test_lock_held_past_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = await SqliteStore.open(str(path), busy_timeout=0.2)
    # Another writer (as another process would) holds the write lock the whole time.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            await store.put(keys.connection("conn_busy"), b"secret-value")
        assert time.monotonic() - started < 3
        assert "secret-value" not in str(raised.value)
        # Readers are not blocked by a writer in WAL mode.
        assert await store.get(keys.connection("conn_busy")) is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await store.put(keys.connection("conn_busy"), b"ok") == 1
    await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    await (await SqliteStore.open(str(path))).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreUnavailable, match="newer"):
        await SqliteStore.open(str(path))


async def test_expired_rows_are_purged_by_later_writes(tmp_path: Path) -> None:
    path = tmp_path / "purge.db"
    store = await SqliteStore.open(str(path))
    for n in range(3):
        await store.put_ttl(keys.oauth_state(f"old{n}"), b"x", 0.05)
        await store.acquire(keys.refresh_lock(f"conn_old{n}"), 0.05)
    time.sleep(0.1)
    await store.put_ttl(keys.oauth_state("new"), b"x", 30)
    await store.acquire(keys.refresh_lock("conn_new"), 30)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM kv").fetchone()[0] == 1
        assert raw.execute("SELECT count(*) FROM locks").fetchone()[0] == 1
    await store.close()


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("", None),
        ("{conn_", "{conn`"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff\U0010ffff", None),
        ("x\ud7ff", "x\ue000"),
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert _prefix_end(prefix) == end


async def test_scan_prefix_bounds_are_exact(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "bounds.db"))
    for key in ["{conn", "{conn_", "{conn_1}:record", "{conn`", "{conn_\U0010ffff}", "{connx"]:
        await store.put(key, b"x")
    page = await store.scan("{conn_", None, 10)
    assert [e.key for e in page.entries] == ["{conn_", "{conn_1}:record", "{conn_\U0010ffff}"]
    assert page.cursor is None
    everything = await store.scan("", None, 2)
    assert len(everything.entries) == 2
    assert everything.cursor == everything.entries[-1].key
    await store.close()
