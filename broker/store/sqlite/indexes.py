"""The SQLite store's indexes beside its records: the due-time index (`due`: a key and the
time it is due) and the ordered indexes (`ordered`: members of a named index, each with an
expiry, read in the order of their bytes)."""

from __future__ import annotations

import sqlite3
import time

from broker.store.base import DueItem, check_index
from broker.store.sqlite.connection import PURGE_BATCH, Job, write_transaction

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

# --- the due-time index -----------------------------------------------------------------------


def schedule(key: str, at: float) -> Job[None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO due (key, at) VALUES (?, ?)", (key, at))

    return op


def unschedule(key: str) -> Job[None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM due WHERE key = ?", (key,))

    return op


def due(now: float, limit: int) -> Job[list[DueItem]]:
    def op(conn: sqlite3.Connection) -> list[DueItem]:
        rows = conn.execute(
            "SELECT key, at FROM due WHERE at <= ? ORDER BY at, key LIMIT ?", (now, limit)
        ).fetchall()
        return [DueItem(str(k), float(a)) for k, a in rows]

    return op


# --- ordered indexes --------------------------------------------------------------------------


def index_add(index: str, member: str, ttl: float) -> Job[None]:
    check_index(index, member)
    if ttl <= 0:
        raise ValueError("ttl must be positive")

    def op(conn: sqlite3.Connection) -> None:
        with write_transaction(conn):
            now = time.time()
            conn.execute(_INDEX_ADD, (index, member, now + ttl))
            conn.execute(_PURGE_ORDERED, (now, PURGE_BATCH))

    return op


def index_range(
    index: str, after: str | None, before: str | None, limit: int, descending: bool
) -> Job[list[str]]:
    check_index(index, limit=limit)
    sql = _INDEX_RANGE[(before is not None, descending)]
    bounds = (after or "",) if before is None else (after or "", before)

    def op(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(sql, (index, *bounds, time.time(), limit)).fetchall()
        return [str(member) for (member,) in rows]

    return op


def index_trim(index: str, below: str) -> Job[int]:
    check_index(index)

    def op(conn: sqlite3.Connection) -> int:
        return int(
            conn.execute(
                "DELETE FROM ordered WHERE name = ? AND member < ?", (index, below)
            ).rowcount
        )

    return op
