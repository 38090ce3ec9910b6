"""Token buckets in the SQLite store (`Store.rate_limit`): one `rates` row per bucket.

Each take is one `BEGIN IMMEDIATE` transaction, so processes sharing the file never both
spend the same token. A row is worthless once its bucket would be full again (a missing
bucket reads as full), so it carries that time as its expiry and writes sweep a few
expired rows, like locks.
"""

from __future__ import annotations

import sqlite3
import time

from broker.store.sqlite.connection import PURGE_BATCH, Job, write_transaction

_PURGE_RATES = (
    "DELETE FROM rates WHERE key IN "
    "(SELECT key FROM rates WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)


def take(key: str, rate: float, burst: float, cost: float) -> Job[float]:
    def op(conn: sqlite3.Connection) -> float:
        with write_transaction(conn):
            now = time.time()
            row = conn.execute(
                "SELECT tokens, at FROM rates WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            tokens = burst if row is None else min(burst, row[0] + max(0.0, now - row[1]) * rate)
            if tokens < cost:
                return (cost - tokens) / rate
            tokens -= cost
            conn.execute(
                "INSERT OR REPLACE INTO rates (key, tokens, at, expires_at) VALUES (?, ?, ?, ?)",
                (key, tokens, now, now + (burst - tokens) / rate + 1),
            )
            conn.execute(_PURGE_RATES, (now, PURGE_BATCH))
        return 0.0

    return op
