"""Locks in the SQLite store: one `locks` row per held lock (owner token, expiry).

A lock whose time ran out counts as free: reads skip it, `acquire` takes it over in place,
and each `acquire` deletes a few expired rows, so abandoned locks never pile up.
"""

from __future__ import annotations

import secrets
import sqlite3
import time

from broker.store.sqlite.connection import PURGE_BATCH, Job, write_transaction

_LIVE_LOCK = "SELECT token FROM locks WHERE key = ? AND expires_at > ?"
_PURGE_LOCKS = (
    "DELETE FROM locks WHERE key IN "
    "(SELECT key FROM locks WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)


def held_by(conn: sqlite3.Connection, lock: str, owner: str) -> bool:
    """Whether `owner` holds `lock` now (inside the caller's transaction, so it stays so)."""
    row = conn.execute(_LIVE_LOCK, (lock, time.time())).fetchone()
    return row is not None and row[0] == owner


def acquire(key: str, ttl: float) -> Job[str | None]:
    if ttl <= 0:
        raise ValueError("ttl must be positive")

    def op(conn: sqlite3.Connection) -> str | None:
        token = secrets.token_urlsafe(18)
        with write_transaction(conn):
            now = time.time()
            # Insert, or take over only a lock whose holder's time ran out.
            taken = conn.execute(
                "INSERT INTO locks (key, token, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET token = excluded.token, "
                "expires_at = excluded.expires_at WHERE locks.expires_at <= ?",
                (key, token, now + ttl, now),
            ).rowcount
            conn.execute(_PURGE_LOCKS, (now, PURGE_BATCH))
        return token if taken == 1 else None

    return op


def release(key: str, token: str) -> Job[bool]:
    def op(conn: sqlite3.Connection) -> bool:
        deleted = conn.execute(
            "DELETE FROM locks WHERE key = ? AND token = ? AND expires_at > ?",
            (key, token, time.time()),
        ).rowcount
        return deleted == 1

    return op
