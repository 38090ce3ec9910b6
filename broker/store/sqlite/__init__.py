"""The embedded SQLite backend: `SqliteStore` (`store`, the records) and the pieces it is built
from: `connection` (opening the file, the schema, write transactions, error mapping), `scan`
(paged prefix scan), `locks`, `indexes` (the due-time index and the ordered indexes)."""

from __future__ import annotations

from broker.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
