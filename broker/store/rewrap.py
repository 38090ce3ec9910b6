"""Rewrap: re-seal every record that is not under the keyring's primary key, an operation of
the sealed layer (`broker.services.rotation` runs it for the operator, with progress).

Runs beside serving brokers (DESIGN section 4: add -> promote -> rewrap -> retire):

- Every store key starts with a hash tag, so a scan of prefix "{" visits every record. A page
  is read sealed (`scan_raw`); only values whose header names another key than the primary
  are opened and sealed again.
- Writes go to the backend under the sealed layer, CAS on the version the scan read, batched
  (`put_many`, one round trip per page). A concurrent write wins: the conflicting record is
  read again and, only if its new value is still not under the primary (a replica that has
  not reloaded the keyring), resealed again. A newer value is never overwritten.
- `keep_ttl=True`: resealed one-time state (OAuth state, connect sessions, audit batches,
  settings history) still expires when it would have; a plain `put` would make it immortal.
- Nothing is dropped: a value that cannot be opened (its key is not in the keyring, it fails
  authentication, it is not a sealed value) stays as it is and is counted under its reason.
- No checkpoint file: the scan is the progress. A rerun after a crash or Ctrl-C skips what is
  already under the primary, so the run is resumable and idempotent.
- Memory is flat: at most three pages at once (one being written, one being resealed, the
  next being fetched); the summary holds counters and a few example keys per failure reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from broker.crypto import key_id_of, named_key_id, sealed_header
from broker.errors import CryptoError, UnknownKey
from broker.store.base import Entry, PutItem, ScanPage
from broker.store.sealed import SealedStore

ALL_RECORDS = "{"
"""Scan prefix matching every store key (each starts with a hash tag, see broker.store.keys)."""
UNSEALED = "(unsealed)"
"""`count_by_key` label for values that are not sealed values at all."""
DEFAULT_BATCH = 500
MAX_ATTEMPTS = 20
"""Reseals of one record that lose to concurrent writers before it is reported as failed."""
EXAMPLES = 5


@dataclass(slots=True)
class RewrapSummary:
    primary: str
    dry_run: bool
    scanned: int = 0
    rewrapped: int = 0
    """Resealed under the primary (with `dry_run`: would be)."""
    skipped: int = 0
    """Already under the primary (including records a concurrent writer resealed first)."""
    vanished: int = 0
    """Deleted or expired between the scan and the reseal: nothing left to reseal."""
    conflicts: int = 0
    """CAS writes lost to a concurrent writer, each followed by a fresh read."""
    failed: Counter[str] = field(default_factory=Counter)
    """Reason -> records left as they are (e.g. "unknown key k-old")."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> the first few store keys that failed for it (keys hold ids, never secrets)."""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def fail(self, reason: str, key: str) -> None:
        self.failed[reason] += 1
        found = self.examples.setdefault(reason, [])
        if len(found) < EXAMPLES:
            found.append(key)


PageDone = Callable[[RewrapSummary], None]
"""Called after each page is resealed and its write started (progress reports hook here)."""


async def count_by_key(store: SealedStore, batch: int = DEFAULT_BATCH) -> Counter[str]:
    """Records per key id over the whole store: the id each value names in its header (no
    keyring needed, nothing decoded), or `UNSEALED` for a value without a sealed header."""
    counts: Counter[str] = Counter()
    pages = _PageIterator(store, batch)
    try:
        async for page in pages:
            counts.update(named_key_id(entry.value) or UNSEALED for entry in page.entries)
    finally:
        await pages.aclose()
    return counts


async def rewrap_all(
    store: SealedStore,
    *,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    on_page: PageDone | None = None,
) -> RewrapSummary:
    """Reseal every record not under `store.keyring.primary`; see the module docstring.

    A page's records count as `scanned` once its write has finished; `summary.elapsed` is
    kept current for `on_page`."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    return await _Rewrap(store, batch, dry_run, on_page).run()


class _PageIterator:
    """Scan pages with the next one already being fetched while the caller works on this one,
    so store round trips overlap the crypto. At most two pages are held at once."""

    def __init__(self, store: SealedStore, batch: int) -> None:
        self._store = store
        self._batch = batch
        self._next: asyncio.Task[ScanPage] | None = self._fetch(None)

    def _fetch(self, cursor: str | None) -> asyncio.Task[ScanPage]:
        return asyncio.ensure_future(self._store.scan_raw(ALL_RECORDS, cursor, self._batch))

    def __aiter__(self) -> _PageIterator:
        return self

    async def __anext__(self) -> ScanPage:
        if self._next is None:
            raise StopAsyncIteration
        try:
            page = await self._next
        except BaseException:
            self._next = None
            raise
        self._next = None if page.cursor is None else self._fetch(page.cursor)
        return page

    async def aclose(self) -> None:
        task, self._next = self._next, None
        if task is not None:
            task.cancel()
            # the prefetch's own failure is moot once the caller stopped
            with contextlib.suppress(BaseException):
                await task


class _Rewrap:
    def __init__(
        self, store: SealedStore, batch: int, dry_run: bool, on_page: PageDone | None
    ) -> None:
        self.store = store
        self.batch = batch
        self.on_page = on_page
        self.summary = RewrapSummary(primary=store.keyring.primary, dry_run=dry_run)

    async def run(self) -> RewrapSummary:
        started = time.monotonic()
        pages = _PageIterator(self.store, self.batch)
        # One page's write is in flight while the next page is opened and sealed: the store's
        # round trip overlaps the crypto.
        writing: asyncio.Task[None] | None = None
        try:
            async for page in pages:
                items = self._reseal_page(page.entries)
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self._write(items, len(page.entries)))
                self.summary.elapsed = time.monotonic() - started
                if self.on_page is not None:
                    self.on_page(self.summary)
            if writing is not None:
                await writing
        finally:
            await pages.aclose()
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
            self.summary.elapsed = time.monotonic() - started
        return self.summary

    def _reseal_page(self, entries: Sequence[Entry]) -> list[PutItem]:
        primary = self.store.keyring.primary
        items: list[PutItem] = []
        for entry in entries:
            resealed = self._reseal(entry.key, entry.value, primary)
            if resealed is not None:
                items.append((entry.key, resealed, entry.version))
        return items

    async def _write(self, items: list[PutItem], scanned: int) -> None:
        if items:
            results = await self.store.inner.put_many(items, keep_ttl=True)
            for (key, _, _), version in zip(items, results, strict=True):
                if version is None:
                    await self._retry(key)
                else:
                    self.summary.rewrapped += 1
        self.summary.scanned += scanned

    def _reseal(self, key: str, value: bytes, primary: str) -> bytes | None:
        """The value sealed under the primary, or None when there is nothing to write (already
        primary, a dry run, or it cannot be opened: then counted as failed)."""
        s = self.summary
        if value.startswith(sealed_header(primary)):
            # the common case on a rerun: no need to parse the whole value
            s.skipped += 1
            return None
        try:
            plaintext = self.store.open(key, value)
        except UnknownKey as exc:
            s.fail(f"unknown key {exc.key_id}", key)
            return None
        except CryptoError:
            s.fail(_unopenable(value), key)
            return None
        if s.dry_run:
            s.rewrapped += 1
            return None
        return self.store.seal(key, plaintext)

    async def _retry(self, key: str) -> None:
        """A concurrent write won: start over from what is there now."""
        s = self.summary
        for attempt in range(MAX_ATTEMPTS):
            s.conflicts += 1
            if attempt:
                # writers in a tight loop on one record: let one of them finish first
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
            found = await self.store.inner.get(key)
            if found is None:
                s.vanished += 1
                return
            value, version = found
            resealed = self._reseal(key, value, self.store.keyring.primary)
            if resealed is None:
                return
            [written] = await self.store.inner.put_many([(key, resealed, version)], keep_ttl=True)
            if written is not None:
                s.rewrapped += 1
                return
        s.fail(f"still changing after {MAX_ATTEMPTS} attempts (run rewrap again)", key)


def _unopenable(value: bytes) -> str:
    try:
        key_id = key_id_of(value)
    except CryptoError:
        return "not a sealed value"
    return f"failed authentication under key {key_id}"
