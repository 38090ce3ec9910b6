"""An in-process cache of SEALED records for the runtime hot path.

Values stay sealed in memory (they are opened per request, never cached in plaintext; the
egress proxy keeps an API-key credential opened beside a cached version, and only while
this cache holds that version: `broker.services.relay.opened`).
Entries live at most `ttl` seconds and are evicted by the store's change feed as soon as any
replica writes the key. A read that raced a write is not cached: every invalidation bumps a
generation counter, and a fetched value is stored only if no invalidation arrived while it was
being fetched.

Misses are single-flight: when a hot entry expires, every request in flight for it misses at
once, and each one fetching it itself put a burst of store round trips into the tail latency
(docs/benchmarks.md, Runtime API). They now share one fetch. A fetch started before an
invalidation is not shared with callers that arrive after it: they could have seen the write
(this replica's own, say) and must not get the older value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

MAX_ENTRIES = 100_000


Fetch = Callable[[str], Awaitable[tuple[bytes, int] | None]]
"""The backend's read: the sealed value and its version, or None."""


class RecordCache:
    """Read-through over `fetch`. A hit on an entry past half its `ttl` also starts a fetch
    in the background (refresh-ahead), so a key read all the time is never missed: its
    readers keep being served the entry they have, never older than `ttl`, and none of them
    waits on the store when it would have expired."""

    def __init__(self, fetch: Fetch, ttl: float = 1.0, max_entries: int = MAX_ENTRIES) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.max_entries = max_entries
        self._generation = 0
        # key -> (sealed value, version, expires at, refresh from)
        self._entries: dict[str, tuple[bytes, int, float, float]] = {}
        self._fills: dict[str, asyncio.Future[tuple[bytes, int] | None]] = {}
        self.hits = 0
        self.misses = 0
        self.listeners: list[Callable[[str | None], None]] = []
        """Told each key dropped for a change (None: all), after the entry is gone: what
        holds a value derived from an entry forgets it at the same moment."""

    def get(self, key: str) -> tuple[bytes, int] | None:
        """The cached entry (no await), or None on a miss. Call it on the event loop: a hit
        that is due for a refresh starts one."""
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None or entry[2] <= now:
            self.misses += 1
            return None
        if entry[3] <= now and key not in self._fills:
            self._start_fill(key)
        self.hits += 1
        return entry[0], entry[1]

    def _put(self, key: str, sealed: bytes, version: int, generation: int) -> None:
        if generation != self._generation:
            return  # an invalidation arrived while this value was being fetched
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # oldest first (insertion order)
        now = time.monotonic()
        self._entries[key] = (sealed, version, now + self.ttl, now + self.ttl / 2)

    async def fill(self, key: str) -> tuple[bytes, int] | None:
        """Fetch `key` once for all concurrent misses of it, cached if nothing changed
        meanwhile. A caller that goes away does not cancel the fetch the others wait for."""
        pending = self._fills.get(key) or self._start_fill(key)
        return await asyncio.shield(pending)

    def _start_fill(self, key: str) -> asyncio.Future[tuple[bytes, int] | None]:
        pending = asyncio.ensure_future(self._fill(key))
        self._fills[key] = pending
        pending.add_done_callback(lambda done: self._forget_fill(key, done))
        return pending

    async def _fill(self, key: str) -> tuple[bytes, int] | None:
        generation = self._generation
        found = await self._fetch(key)
        if found is not None:
            self._put(key, found[0], found[1], generation)
        return found

    def _forget_fill(self, key: str, done: asyncio.Future[tuple[bytes, int] | None]) -> None:
        if self._fills.get(key) is done:
            del self._fills[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure reaches the callers, not the loop's log

    def on_change(self, key: str | None) -> None:
        self._generation += 1
        if key is None:
            self._entries.clear()
            self._fills.clear()
        else:
            self._entries.pop(key, None)
            self._fills.pop(key, None)
        for forget in self.listeners:
            forget(key)


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
