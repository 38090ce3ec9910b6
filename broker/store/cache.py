"""An in-process cache of SEALED records for the runtime hot path.

Values stay sealed in memory (they are opened per request, never cached in plaintext).
Entries live at most `ttl` seconds and are evicted by the store's change feed as soon as any
replica writes the key. A read that raced a write is not cached: every invalidation bumps a
generation counter, and a fetched value is stored only if no invalidation arrived while it was
being fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

MAX_ENTRIES = 100_000


class RecordCache:
    def __init__(self, ttl: float = 1.0, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.generation = 0
        self._entries: dict[str, tuple[bytes, int, float]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[bytes, int] | None:
        entry = self._entries.get(key)
        if entry is None or entry[2] <= time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry[0], entry[1]

    def put(self, key: str, sealed: bytes, version: int, generation: int) -> None:
        if generation != self.generation:
            return  # an invalidation arrived while this value was being fetched
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # oldest first (insertion order)
        self._entries[key] = (sealed, version, time.monotonic() + self.ttl)

    def on_change(self, key: str | None) -> None:
        self.generation += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)


class ChangeNotifier:
    """Lets a coroutine wait until a key changes (or a timeout passes), fed by the same
    change feed as the cache. Without a feed `wait` is a plain sleep: the caller polls."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def wait(self, key: str, at_most: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, at_most)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiters.get(key)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(waiter)
                if not waiting:
                    del self._waiters[key]

    def notify(self, key: str | None) -> None:
        """Wake the waiters of `key`; None (changes may have been missed) wakes everyone."""
        if key is None:
            woken = [w for ws in self._waiters.values() for w in ws]
        else:
            woken = self._waiters.get(key, [])
        for waiter in woken:
            if not waiter.done():
                waiter.set_result(None)
