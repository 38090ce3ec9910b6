"""The SQLite store's paged prefix scan: one index range read on `kv.key` per page.

The cursor is the last key of the page (keys are unique and ordered), so a page never skips
or repeats a key that exists for the whole scan. Expired rows are skipped like on every read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from broker.store.base import Entry, ScanPage

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


def scan_page(
    prefix: str, cursor: str | None, limit: int
) -> Callable[[sqlite3.Connection], ScanPage]:
    """The job reading one page (arguments are checked here, before it is queued)."""
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

    return op


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
