"""`SqliteStore`: the embedded default backend, one SQLite file in WAL mode.

Safe for many asyncio tasks and several processes on one machine:

- sqlite3 connections are not thread-safe, so each store owns one connection used only by
  one dedicated worker thread; every call is a job on that thread, off the event loop.
- Cross-process safety comes from SQLite's own file locking: each read-modify-write (CAS put,
  fenced put, put_ttl, delete, acquire) runs inside `BEGIN IMMEDIATE`, which takes the write
  lock before the read, so two processes can never both pass the same version check. Waiting
  for the lock is bounded by `busy_timeout`; past it the call raises `StoreUnavailable`.
- Single statements (take, release, schedule) are atomic on their own.
- Expiry is a column checked on every read; expired rows are invisible and each write that
  creates an expiring row deletes a few expired ones, so garbage never outgrows the live set.
- `synchronous=FULL` by default: a refreshed OAuth token whose provider rotated the refresh
  token must not be lost to a power cut after the provider has forgotten the old one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, TypeVar

from broker.errors import LockLost, StoreUnavailable, VersionConflict
from broker.store.base import DueItem, Fence, PutItem, ScanPage, check_fence, check_rate
from broker.store.sqlite import indexes, locks, rates
from broker.store.sqlite.connection import (
    PURGE_BATCH,
    Job,
    connect,
    guarded,
    write_transaction,
)
from broker.store.sqlite.scan import scan_page

_T = TypeVar("_T")

_LIVE_VERSION = "SELECT version FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
_LIVE_ROW = (
    "SELECT version, expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_WRITE = "INSERT OR REPLACE INTO kv (key, value, version, expires_at) VALUES (?, ?, ?, ?)"
_PURGE_KV = (
    "DELETE FROM kv WHERE key IN "
    "(SELECT key FROM kv WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)


class SqliteStore:
    """A `broker.store.base.Store` on one SQLite file: `await SqliteStore.open(path)`."""

    def __init__(self, path: str, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._executor = executor

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        busy_timeout: float = 5.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> SqliteStore:
        """Open (creating the parent directory, file and schema as needed)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, connect, path, busy_timeout, synchronous)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, conn, executor)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Jobs already queued run first: the worker is FIFO and this close is queued behind them.
        await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    async def _run(self, op: Job[_T]) -> _T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("sqlite store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded, op, conn)

    async def ping(self) -> None:
        # Unlike SELECT 1 this reads the database file, so I/O errors and a corrupt header show.
        await self._run(lambda c: c.execute("PRAGMA schema_version").fetchone())

    async def get(self, key: str) -> tuple[bytes, int] | None:
        def op(conn: sqlite3.Connection) -> tuple[bytes, int] | None:
            row = conn.execute(
                "SELECT value, version FROM kv WHERE key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
            return None if row is None else (bytes(row[0]), int(row[1]))

        return await self._run(op)

    async def put(self, key: str, value: bytes, expect_version: int | None = None) -> int:
        def op(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                return _cas_put(conn, key, value, expect_version)

        return await self._run(op)

    async def put_fenced(
        self, key: str, value: bytes, expect_version: int | None, fence: Fence
    ) -> int:
        check_fence(key, fence)

        def op(conn: sqlite3.Connection) -> int:
            # one transaction: the lock cannot change hands between this check and the write
            with write_transaction(conn):
                if not locks.held_by(conn, fence.lock, fence.owner):
                    raise LockLost(f"{key}: the lock {fence.lock} is no longer held")
                return _cas_put(conn, key, value, expect_version)

        return await self._run(op)

    async def put_many(
        self, items: Sequence[PutItem], *, keep_ttl: bool = False
    ) -> list[int | None]:
        """One `BEGIN IMMEDIATE` transaction for the whole batch: one fsync instead of one
        per item, and all-or-nothing on a crash (stronger than the protocol asks)."""
        if any(e is not None and e < 0 for _, _, e in items):
            raise ValueError("expect_version must be None or >= 0")
        batch = list(items)  # the worker thread must not see the caller mutate it

        def op(conn: sqlite3.Connection) -> list[int | None]:
            results: list[int | None] = []
            with write_transaction(conn):
                now = time.time()
                for key, value, expect in batch:
                    row = conn.execute(_LIVE_ROW, (key, now)).fetchone()
                    current = 0 if row is None else int(row[0])
                    if expect is not None and expect != current:
                        results.append(None)
                        continue
                    expires_at = row[1] if keep_ttl and row is not None else None
                    conn.execute(_WRITE, (key, value, current + 1, expires_at))
                    results.append(current + 1)
            return results

        return await self._run(op) if batch else []

    async def delete(self, key: str, expect_version: int | None = None) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with write_transaction(conn):
                current = _live_version(conn, key)
                _check(key, expect_version, current)
                # Also drops an expired row, which counts as already gone.
                conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            return current > 0

        return await self._run(op)

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        return await self._run(scan_page(prefix, cursor, limit))

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        if ttl <= 0:
            raise ValueError("ttl must be positive")

        def op(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                now = time.time()
                current = _live_version(conn, key)
                conn.execute(_WRITE, (key, value, current + 1, now + ttl))
                conn.execute(_PURGE_KV, (now, PURGE_BATCH))
            return current + 1

        return await self._run(op)

    async def take(self, key: str) -> bytes | None:
        def op(conn: sqlite3.Connection) -> bytes | None:
            # One DELETE ... RETURNING is atomic across threads and processes: exactly one
            # caller gets the row back. fetchall() runs the statement to completion.
            rows = conn.execute(
                "DELETE FROM kv WHERE key = ? RETURNING value, expires_at", (key,)
            ).fetchall()
            if not rows:
                return None
            value, expires_at = rows[0]
            if expires_at is not None and expires_at <= time.time():
                return None
            return bytes(value)

        return await self._run(op)

    async def acquire(self, key: str, ttl: float) -> str | None:
        return await self._run(locks.acquire(key, ttl))

    async def release(self, key: str, token: str) -> bool:
        return await self._run(locks.release(key, token))

    async def rate_limit(self, key: str, rate: float, burst: float, cost: float = 1) -> float:
        check_rate(rate, burst, cost)
        return await self._run(rates.take(key, rate, burst, cost))

    async def schedule(self, key: str, at: float) -> None:
        await self._run(indexes.schedule(key, at))

    async def unschedule(self, key: str) -> None:
        await self._run(indexes.unschedule(key))

    async def due(self, now: float, limit: int) -> list[DueItem]:
        return await self._run(indexes.due(now, limit))

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        await self._run(indexes.index_add(index, member, ttl))

    async def index_range(
        self,
        index: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[str]:
        return await self._run(indexes.index_range(index, after, before, limit, descending))

    async def index_trim(self, index: str, below: str) -> int:
        return await self._run(indexes.index_trim(index, below))


def _cas_put(conn: sqlite3.Connection, key: str, value: bytes, expect_version: int | None) -> int:
    """`put` inside the caller's write transaction: the new version, or `VersionConflict`."""
    current = _live_version(conn, key)
    _check(key, expect_version, current)
    conn.execute(_WRITE, (key, value, current + 1, None))
    return current + 1


def _live_version(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute(_LIVE_VERSION, (key, time.time())).fetchone()
    return 0 if row is None else int(row[0])


def _check(key: str, expect_version: int | None, current: int) -> None:
    if expect_version is not None and expect_version != current:
        raise VersionConflict(f"{key}: expected version {expect_version}, found {current}")
