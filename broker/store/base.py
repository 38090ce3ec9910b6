"""The storage contract: a small, untrusted key-value interface every backend implements.

Modelled on Vault's physical backend: the store sees opaque bytes (already sealed by
`broker.store.sealed`), never plaintext, and one conformance suite
(`tests/store/conformance.py`) is run against every backend.

Keys are built only by `broker.store.keys`. Every key starts with a hash tag naming the
record it belongs to (`{conn_123}:record`, `{conn_123}:refresh-lock`), so a Redis Cluster keeps
one record's keys on one shard and an operator can find all of one connection's data.

Versions: a key that does not exist has version 0. Every successful `put`, `put_ttl` or
`put_many` item returns the new version, which is the previous version + 1 (so a created key
has version 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from broker.store import keys


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: bytes
    version: int


@dataclass(frozen=True, slots=True)
class ScanPage:
    entries: list[Entry]
    cursor: str | None
    """Pass back to `scan` for the next page; None when the scan is complete."""


PutItem: TypeAlias = tuple[str, bytes, int | None]
"""One `put_many` write: (key, value, expect_version), with `put`'s meaning of the version."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A lock that a write needs its writer to still own (`Store.put_fenced`)."""

    lock: str
    owner: str
    """The owner token `acquire` returned."""


def check_fence(key: str, fence: Fence) -> None:
    """A fence and its record share a hash tag (a Redis script can then read both on one
    shard); anything else is a programming error."""
    if keys.record_id(fence.lock) != keys.record_id(key):
        raise ValueError("a fencing lock must belong to the record it fences")


@dataclass(frozen=True, slots=True)
class DueItem:
    key: str
    at: float
    """Unix time (seconds) at which the item became due."""


@runtime_checkable
class Store(Protocol):
    """Every method may raise `StoreUnavailable` (bounded time, never a hang) and CAS
    methods raise `VersionConflict` when the expected version does not match."""

    async def get(self, key: str) -> tuple[bytes, int] | None:
        """The value and its version, or None when the key is missing or expired."""

    async def put(self, key: str, value: bytes, expect_version: int | None = None) -> int:
        """Write `value`; returns the new version.

        `expect_version=None` writes blindly; `0` creates only (conflict if the key exists);
        `n > 0` writes only if the current version is `n`. A put clears any TTL on the key.
        """

    async def put_fenced(
        self, key: str, value: bytes, expect_version: int | None, fence: Fence
    ) -> int:
        """`put`, done only while `fence.owner` still owns the lock `fence.lock`, checked in
        the same atomic step as the version: a holder whose lock ran out (or was taken over)
        cannot write over its successor. Raises `LockLost` (checked first; nothing written)
        or `VersionConflict`. The lock must share the key's hash tag (`check_fence`)."""

    async def put_many(
        self, items: Sequence[PutItem], *, keep_ttl: bool = False
    ) -> list[int | None]:
        """Many `put`s in one round trip (bulk work such as key rotation); for each item in
        order, its new version or None when its version check failed (no exception).

        Each item is atomic on its own; the batch is not a transaction: on an error some items
        may have been written, which a CAS caller sees as a conflict when it retries. Items on
        the same key apply in order. `keep_ttl=False` clears TTLs like `put`; `keep_ttl=True`
        leaves a key's expiry as it was (a value rewritten in place, e.g. resealed one-time
        state, still expires when it would have).
        """

    async def delete(self, key: str, expect_version: int | None = None) -> bool:
        """Delete; True if something was deleted. With `expect_version` set, a version
        mismatch (including a missing key when n > 0) raises `VersionConflict`."""

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        """One page (at most `limit` entries, possibly fewer or even none while `cursor` is not
        None) of the keys starting with `prefix`. A key present and unchanged for the whole
        scan is returned exactly once; order is unspecified."""

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        """Blind write that expires after `ttl` seconds; returns the new version."""

    async def take(self, key: str) -> bytes | None:
        """Atomically read and delete (one-time state). Of many concurrent callers exactly
        one gets the value."""

    async def acquire(self, key: str, ttl: float) -> str | None:
        """Take a lock for `ttl` seconds; returns a fresh owner token, or None if held."""

    async def release(self, key: str, token: str) -> bool:
        """Release a lock only if `token` still owns it (compare-and-delete)."""

    async def schedule(self, key: str, at: float) -> None:
        """Put `key` in the due-time index at unix time `at` (replacing an earlier time)."""

    async def unschedule(self, key: str) -> None:
        """Remove `key` from the due-time index (no error if absent)."""

    async def due(self, now: float, limit: int) -> list[DueItem]:
        """At most `limit` items with `at <= now`, earliest first within a partition. Items stay
        in the index until rescheduled or unscheduled."""

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        """Put `member` in the ordered index `index` (already there: no error). Members order
        by their UTF-8 bytes and are ids, never secrets. A member stays listed at least `ttl`
        seconds; after that it may vanish, and does once the index has gone `ttl` seconds
        without an add or `index_trim` removes it."""

    async def index_range(
        self,
        index: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[str]:
        """At most `limit` members strictly between `after` and `before` (None: unbounded),
        in ascending order, or descending (from `before` down) when `descending`."""

    async def index_trim(self, index: str, below: str) -> int:
        """Remove the members that sort before `below`; returns how many."""

    async def rate_limit(self, key: str, rate: float, burst: float, cost: float = 1) -> float:
        """Take `cost` tokens from the token bucket `key`, which holds at most `burst` and
        refills at `rate` tokens a second (a new bucket starts full). Returns 0.0 when taken,
        else the seconds until `cost` tokens will be there, taking nothing. Atomic across
        every process sharing the store; the backend's clock (one clock) drives the refill."""

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""

    async def close(self) -> None:
        """Release connections and files. Idempotent."""


@runtime_checkable
class ChangeFeed(Protocol):
    """A backend that can tell every process about every durable write (any replica's), which
    is what makes an in-process read cache safe (see `broker.store.cache`)."""

    async def watch_changes(self, on_change: Callable[[str | None], None]) -> None:
        """Run until cancelled, calling `on_change(key)` after each write of a durable record
        and `on_change(None)` whenever changes may have been missed (forget everything)."""


def check_rate(rate: float, burst: float, cost: float) -> None:
    """The arguments every backend accepts: a bucket that can ever grant `cost`."""
    if not rate > 0 or not burst > 0:
        raise ValueError("rate and burst must be positive")
    if not 0 < cost <= burst:
        raise ValueError("cost must be positive and at most burst")


def check_index(index: str, member: str | None = None, limit: int | None = None) -> None:
    """The arguments every backend accepts: a Redis hash tag wraps the index name, so no
    braces."""
    if not index or "{" in index or "}" in index:
        raise ValueError("an index name is a non-empty string without braces")
    if member is not None and not member:
        raise ValueError("an index member cannot be empty")
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
