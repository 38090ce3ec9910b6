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
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Literal, TypeVar

from broker.errors import LockLost, StoreUnavailable, VersionConflict
from broker.store.base import DueItem, Entry, Fence, PutItem, ScanPage, check_fence, check_index

_T = TypeVar("_T")

SCHEMA_VERSION = 2
"""2 added `ordered` (the ordered indexes); a version-1 file is upgraded in place."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        version INTEGER NOT NULL,
        expires_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS locks (
        key TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS locks_expiry ON locks (expires_at)",
    "CREATE TABLE IF NOT EXISTS due (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS due_at ON due (at, key)",
    """CREATE TABLE IF NOT EXISTS ordered (
        name TEXT NOT NULL,
        member TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (name, member)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ordered_expiry ON ordered (expires_at)",
)

# Rows of expired data removed per write that creates an expiring row: more than one, so the
# sweep outpaces the rate at which rows expire.
_PURGE_BATCH = 4

_LIVE_VERSION = "SELECT version FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
_LIVE_ROW = (
    "SELECT version, expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_LIVE_LOCK = "SELECT token FROM locks WHERE key = ? AND expires_at > ?"
_WRITE = "INSERT OR REPLACE INTO kv (key, value, version, expires_at) VALUES (?, ?, ?, ?)"
_PURGE_KV = (
    "DELETE FROM kv WHERE key IN "
    "(SELECT key FROM kv WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)
_PURGE_LOCKS = (
    "DELETE FROM locks WHERE key IN "
    "(SELECT key FROM locks WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)
# Four constant statements, one per (first page?, prefix has an upper bound?), so that each
# keeps a plain index range on `key` and no SQL is built per call.
_SCAN_COLUMNS = "SELECT key, value, version FROM kv WHERE "
_SCAN_TAIL = " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"
_SCAN = {
    (True, True): _SCAN_COLUMNS + "key >= ? AND key < ?" + _SCAN_TAIL,
    (True, False): _SCAN_COLUMNS + "key >= ?" + _SCAN_TAIL,
    (False, True): _SCAN_COLUMNS + "key > ? AND key < ?" + _SCAN_TAIL,
    (False, False): _SCAN_COLUMNS + "key > ?" + _SCAN_TAIL,
}

_INDEX_ADD = (
    "INSERT INTO ordered (name, member, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name, member) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
)
_PURGE_ORDERED = (
    "DELETE FROM ordered WHERE (name, member) IN "
    "(SELECT name, member FROM ordered WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)
# One constant statement per (upper bound?, descending?); the empty string, below every
# member, stands for "no lower bound".
_INDEX_COLUMNS = "SELECT member FROM ordered WHERE name = ? AND member > ? "
_INDEX_LIVE = "AND expires_at > ? ORDER BY member "
_INDEX_RANGE = {
    (False, False): _INDEX_COLUMNS + _INDEX_LIVE + "LIMIT ?",
    (False, True): _INDEX_COLUMNS + _INDEX_LIVE + "DESC LIMIT ?",
    (True, False): _INDEX_COLUMNS + "AND member < ? " + _INDEX_LIVE + "LIMIT ?",
    (True, True): _INDEX_COLUMNS + "AND member < ? " + _INDEX_LIVE + "DESC LIMIT ?",
}


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
            conn = await loop.run_in_executor(executor, _connect, path, busy_timeout, synchronous)
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

    async def _run(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("sqlite store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, _guarded, op, conn)

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
            with _write_transaction(conn):
                current = _live_version(conn, key)
                _check(key, expect_version, current)
                conn.execute(_WRITE, (key, value, current + 1, None))
            return current + 1

        return await self._run(op)

    async def put_fenced(
        self, key: str, value: bytes, expect_version: int | None, fence: Fence
    ) -> int:
        check_fence(key, fence)

        def op(conn: sqlite3.Connection) -> int:
            # one transaction: the lock cannot change hands between this check and the write
            with _write_transaction(conn):
                owner = conn.execute(_LIVE_LOCK, (fence.lock, time.time())).fetchone()
                if owner is None or owner[0] != fence.owner:
                    raise LockLost(f"{key}: the lock {fence.lock} is no longer held")
                current = _live_version(conn, key)
                _check(key, expect_version, current)
                conn.execute(_WRITE, (key, value, current + 1, None))
            return current + 1

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
            with _write_transaction(conn):
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
            with _write_transaction(conn):
                current = _live_version(conn, key)
                _check(key, expect_version, current)
                # Also drops an expired row, which counts as already gone.
                conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            return current > 0

        return await self._run(op)

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        if limit < 1:
            raise ValueError("scan limit must be at least 1")
        first = cursor is None or cursor < prefix
        lower = prefix if first or cursor is None else cursor
        upper = _prefix_end(prefix)
        sql = _SCAN[(first, upper is not None)]

        def op(conn: sqlite3.Connection) -> ScanPage:
            bounds = (lower,) if upper is None else (lower, upper)
            # One row more than asked tells whether another page exists.
            rows = conn.execute(sql, (*bounds, time.time(), limit + 1)).fetchall()
            entries = [Entry(str(k), bytes(v), int(n)) for k, v, n in rows[:limit]]
            more = len(rows) > limit
            return ScanPage(entries, entries[-1].key if more else None)

        return await self._run(op)

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        if ttl <= 0:
            raise ValueError("ttl must be positive")

        def op(conn: sqlite3.Connection) -> int:
            with _write_transaction(conn):
                now = time.time()
                current = _live_version(conn, key)
                conn.execute(_WRITE, (key, value, current + 1, now + ttl))
                conn.execute(_PURGE_KV, (now, _PURGE_BATCH))
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
        if ttl <= 0:
            raise ValueError("ttl must be positive")

        def op(conn: sqlite3.Connection) -> str | None:
            token = secrets.token_urlsafe(18)
            with _write_transaction(conn):
                now = time.time()
                # Insert, or take over only a lock whose holder's time ran out.
                taken = conn.execute(
                    "INSERT INTO locks (key, token, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET token = excluded.token, "
                    "expires_at = excluded.expires_at WHERE locks.expires_at <= ?",
                    (key, token, now + ttl, now),
                ).rowcount
                conn.execute(_PURGE_LOCKS, (now, _PURGE_BATCH))
            return token if taken == 1 else None

        return await self._run(op)

    async def release(self, key: str, token: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute(
                "DELETE FROM locks WHERE key = ? AND token = ? AND expires_at > ?",
                (key, token, time.time()),
            ).rowcount
            return deleted == 1

        return await self._run(op)

    async def schedule(self, key: str, at: float) -> None:
        await self._run(
            lambda c: c.execute("INSERT OR REPLACE INTO due (key, at) VALUES (?, ?)", (key, at))
        )

    async def unschedule(self, key: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM due WHERE key = ?", (key,)))

    async def due(self, now: float, limit: int) -> list[DueItem]:
        def op(conn: sqlite3.Connection) -> list[DueItem]:
            rows = conn.execute(
                "SELECT key, at FROM due WHERE at <= ? ORDER BY at, key LIMIT ?", (now, limit)
            ).fetchall()
            return [DueItem(str(k), float(a)) for k, a in rows]

        return await self._run(op)

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        check_index(index, member)
        if ttl <= 0:
            raise ValueError("ttl must be positive")

        def op(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                now = time.time()
                conn.execute(_INDEX_ADD, (index, member, now + ttl))
                conn.execute(_PURGE_ORDERED, (now, _PURGE_BATCH))

        await self._run(op)

    async def index_range(
        self,
        index: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[str]:
        check_index(index, limit=limit)
        sql = _INDEX_RANGE[(before is not None, descending)]
        bounds = (after or "",) if before is None else (after or "", before)

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(sql, (index, *bounds, time.time(), limit)).fetchall()
            return [str(member) for (member,) in rows]

        return await self._run(op)

    async def index_trim(self, index: str, below: str) -> int:
        check_index(index)

        def op(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "DELETE FROM ordered WHERE name = ? AND member < ?", (index, below)
                ).rowcount
            )

        return await self._run(op)


def _connect(path: str, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnavailable(f"cannot open sqlite store at {path}: {exc}") from exc
    try:
        _guarded(lambda c: _init(c, synchronous), conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _init(conn: sqlite3.Connection, synchronous: str) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"sqlite store cannot use WAL mode (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    with _write_transaction(conn):
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"sqlite store schema version {found} is newer than this broker "
                f"supports ({SCHEMA_VERSION})"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _guarded(op: Callable[[sqlite3.Connection], _T], conn: sqlite3.Connection) -> _T:
    """Run `op`, turning SQLite's "cannot serve now" errors into `StoreUnavailable`.

    SQLite messages name the failure (locked, I/O error, not a database), never bound values.
    Other sqlite3 errors (integrity, programming) are bugs and propagate unchanged.
    """
    try:
        return op(conn)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
            raise StoreUnavailable(f"sqlite store unavailable: {exc}") from exc
        raise


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the file's write lock before the first read, so a version check and the
    # write that follows it cannot interleave with another process's.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _live_version(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute(_LIVE_VERSION, (key, time.time())).fetchone()
    return 0 if row is None else int(row[0])


def _check(key: str, expect_version: int | None, current: int) -> None:
    if expect_version is not None and expect_version != current:
        raise VersionConflict(f"{key}: expected version {expect_version}, found {current}")


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`; None if there is none.

    SQLite compares TEXT by its UTF-8 bytes, which orders like code points, so bumping the
    last code point that can be bumped gives the exclusive upper bound of the prefix range.
    """
    chars = list(prefix)
    while chars:
        point = ord(chars.pop()) + 1
        if point <= 0x10FFFF:
            if 0xD800 <= point <= 0xDFFF:  # surrogates cannot be stored; skip past them
                point = 0xE000
            return "".join(chars) + chr(point)
    return None
