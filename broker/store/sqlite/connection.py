"""The SQLite store's file: opening it (WAL, durability, the schema and its upgrade), and the
two rules every statement runs under: read-modify-writes in `BEGIN IMMEDIATE`, and SQLite's
"cannot serve now" errors turned into `StoreUnavailable`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from broker.errors import StoreUnavailable

_T = TypeVar("_T")

Job = Callable[[sqlite3.Connection], _T]
"""One call's work, run on the store's worker thread with its connection."""

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
    """CREATE TABLE IF NOT EXISTS rates (
        key TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        at REAL NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS rates_expiry ON rates (expires_at)",
)

PURGE_BATCH = 4
"""Rows of expired data removed per write that creates an expiring row: more than one, so the
sweep outpaces the rate at which rows expire."""


def connect(path: str, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnavailable(f"cannot open sqlite store at {path}: {exc}") from exc
    try:
        guarded(lambda c: _init(c, synchronous), conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _init(conn: sqlite3.Connection, synchronous: str) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"sqlite store cannot use WAL mode (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    with write_transaction(conn):
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"sqlite store schema version {found} is newer than this broker "
                f"supports ({SCHEMA_VERSION})"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def guarded(op: Callable[[sqlite3.Connection], _T], conn: sqlite3.Connection) -> _T:
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
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
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
