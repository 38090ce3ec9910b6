"""The sealed layer: the only place plaintext becomes ciphertext.

`SealedStore` wraps any `Store` and seals every value with the current keyring's primary key,
using the store key as AAD, so a ciphertext copied to another key fails to open. The keyring
comes from a zero-argument provider called on every operation, so a running broker can swap
keyrings (SIGHUP) without rebuilding the store.

Locks and the due-time index hold no secrets; they pass straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from broker.crypto import Keyring, needs_rewrap, open_sealed, seal
from broker.store.base import DueItem, Entry, Fence, PutItem, ScanPage, Store
from broker.store.cache import RecordCache

KeyringProvider = Callable[[], Keyring]


def _aad(key: str) -> bytes:
    # The logical key, not a backend's namespaced one, so moving namespaces keeps data readable.
    return key.encode("utf-8")


class SealedStore:
    def __init__(
        self, inner: Store, keyring: KeyringProvider, cache: RecordCache | None = None
    ) -> None:
        self._inner = inner
        self._keyring = keyring
        self._cache = cache

    @property
    def inner(self) -> Store:
        """The untrusted backend, holding sealed bytes only (for the rewrap, `store.rewrap`,
        and diagnostics; nothing outside `broker.store` uses it)."""
        return self._inner

    @property
    def keyring(self) -> Keyring:
        return self._keyring()

    def seal(self, key: str, plaintext: bytes) -> bytes:
        return seal(self._keyring(), plaintext, _aad(key))

    def open(self, key: str, sealed: bytes) -> bytes:
        return open_sealed(self._keyring(), sealed, _aad(key))

    def needs_rewrap(self, sealed: bytes) -> bool:
        return needs_rewrap(self._keyring(), sealed)

    # --- values (sealed) -------------------------------------------------------------------

    async def get(self, key: str) -> tuple[bytes, int] | None:
        found = await self._inner.get(key)
        if found is None:
            return None
        sealed, version = found
        return self.open(key, sealed), version

    async def get_cached(self, key: str) -> tuple[bytes, int] | None:
        """`get` through the read cache, for the runtime hot path only: a value may be up to
        the cache's TTL old if a change notification was lost. Read-modify-write code uses
        `get`, which always asks the store."""
        if self._cache is None:
            return await self.get(key)
        found = self._cache.get(key)
        if found is None:
            found = await self._cache.fill(key)
            if found is None:
                return None
        sealed, version = found
        return self.open(key, sealed), version

    def peek_cached(self, key: str) -> tuple[bytes, int] | None:
        """The cached record opened, without awaiting anything (None on a miss): the
        synchronous fast path under `get_cached`, which fills the cache."""
        found = self._cache.get(key) if self._cache is not None else None
        if found is None:
            return None
        return self.open(key, found[0]), found[1]

    def cached_version(self, key: str) -> int | None:
        """The version of the cached record, opening nothing (None on a miss): whether a
        value derived from an opened version still holds."""
        found = self._cache.get(key) if self._cache is not None else None
        return None if found is None else found[1]

    def follow_changes(self, forget: Callable[[str | None], None]) -> bool:
        """Have `forget` told each key the read cache drops for a change (None: all), as
        it drops it; False, and nothing to follow, where there is no read cache."""
        if self._cache is None:
            return False
        self._cache.listeners.append(forget)
        return True

    def _evict(self, key: str) -> None:
        # our own write: do not wait for the change feed's echo
        if self._cache is not None:
            self._cache.on_change(key)

    async def put(self, key: str, value: bytes, expect_version: int | None = None) -> int:
        try:
            return await self._inner.put(key, self.seal(key, value), expect_version)
        finally:
            self._evict(key)

    async def put_fenced(
        self, key: str, value: bytes, expect_version: int | None, fence: Fence
    ) -> int:
        try:
            return await self._inner.put_fenced(key, self.seal(key, value), expect_version, fence)
        finally:
            self._evict(key)

    async def put_many(
        self, items: Sequence[PutItem], *, keep_ttl: bool = False
    ) -> list[int | None]:
        sealed = [(key, self.seal(key, value), expect) for key, value, expect in items]
        try:
            return await self._inner.put_many(sealed, keep_ttl=keep_ttl)
        finally:
            for key, _, _ in items:
                self._evict(key)

    async def delete(self, key: str, expect_version: int | None = None) -> bool:
        try:
            return await self._inner.delete(key, expect_version)
        finally:
            self._evict(key)

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        return await self._inner.put_ttl(key, self.seal(key, value), ttl)

    async def take(self, key: str) -> bytes | None:
        sealed = await self._inner.take(key)
        return None if sealed is None else self.open(key, sealed)

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        """Like `Store.scan`, with every value opened."""
        page = await self._inner.scan(prefix, cursor, limit)
        entries = [Entry(e.key, self.open(e.key, e.value), e.version) for e in page.entries]
        return ScanPage(entries, page.cursor)

    async def scan_raw(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        """The sealed entries as stored (the rewrap reads the key ids in their headers)."""
        return await self._inner.scan(prefix, cursor, limit)

    # --- locks, rate buckets, due index, ordered indexes, lifecycle (no secrets: pass-through)

    async def acquire(self, key: str, ttl: float) -> str | None:
        return await self._inner.acquire(key, ttl)

    async def release(self, key: str, token: str) -> bool:
        return await self._inner.release(key, token)

    async def rate_limit(self, key: str, rate: float, burst: float, cost: float = 1) -> float:
        return await self._inner.rate_limit(key, rate, burst, cost)

    async def schedule(self, key: str, at: float) -> None:
        await self._inner.schedule(key, at)

    async def unschedule(self, key: str) -> None:
        await self._inner.unschedule(key)

    async def due(self, now: float, limit: int) -> list[DueItem]:
        return await self._inner.due(now, limit)

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        await self._inner.index_add(index, member, ttl)

    async def index_range(
        self,
        index: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[str]:
        return await self._inner.index_range(
            index, after=after, before=before, limit=limit, descending=descending
        )

    async def index_trim(self, index: str, below: str) -> int:
        return await self._inner.index_trim(index, below)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
