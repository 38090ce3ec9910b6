"""Storage: the `Store` protocol, its backends, and the sealed layer over them."""

from __future__ import annotations

from broker.store.base import DueItem, Entry, ScanPage, Store

__all__ = ["DueItem", "Entry", "ScanPage", "Store", "open_store"]


async def open_store(url: str) -> Store:
    """Open the backend a `BROKER_STORE` URL names. Only composition roots call this."""
    if url.startswith("sqlite://"):
        from broker.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://").removeprefix("/")
        return await SqliteStore.open(path)
    from broker.store.redis import RedisStore

    return await RedisStore.open(url)
