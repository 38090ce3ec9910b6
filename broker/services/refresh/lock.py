"""The refresh lock as its holder sees it: the fence its token write carries, and the time
left for the provider call.

A holder can outlive its lock: the store reads before the provider call and the writes after
it each have their own deadlines, so a slow store carries it past the TTL while another
replica takes the lock over and spends the same refresh token. Two things keep that from
costing the grant. The provider call gets only what is left of the lock less a share kept
for the writes (a holder with too little left does not spend the refresh token at all), and
the token write is fenced (`Store.put_fenced`): it lands only while the lock is still ours.

`LockWait` times what the lock costs those who do not hold it: a refresh that found the
lock taken waits for the holder's result, or for the lock to be free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from broker import metrics
from broker.errors import LockLost
from broker.services.context import Context
from broker.services.provider_send import MAX_SECONDS
from broker.store import keys
from broker.store.base import Fence

log = logging.getLogger("broker.refresh")

WRITE_SHARE = 0.25
"""Of the lock's TTL, what the provider call leaves for the reads and writes after it (the
token write, its events, the next schedule): 3.75 s of the default 15, about two store
deadlines."""
MIN_PROVIDER_SECONDS = 0.5
"""Below this, a provider call would likely time out after spending the refresh token."""


@dataclass(frozen=True)
class HeldLock:
    fence: Fence
    ttl: float
    expires_by: float
    """`time.monotonic()` by which the lock has expired at the latest (measured from before
    the acquire was sent, so never later than the store's own expiry)."""

    def provider_seconds(self) -> float:
        """The provider call's time limit; `LockLost` when too little of the lock is left to
        spend the refresh token safely (nothing has been spent yet)."""
        left = self.expires_by - time.monotonic() - self.ttl * WRITE_SHARE
        if left < MIN_PROVIDER_SECONDS:
            log.warning("refresh not started: %s has too little time left", self.fence.lock)
            raise LockLost(f"{self.fence.lock}: too little of the lock is left to refresh")
        return min(MAX_SECONDS, left)


class LockWait:
    """The time one refresh waits on another holder of the connection's refresh lock, from
    its first refused attempt until the wait ends; observed once, under how it ended
    (`broker_refresh_lock_wait_seconds`). A refresh that took the lock at once observes
    nothing."""

    __slots__ = ("connector", "since")

    def __init__(self, connector: str) -> None:
        self.connector = connector
        self.since: float | None = None

    def begin(self) -> None:
        if self.since is None:
            self.since = time.perf_counter()

    def end(self, outcome: str) -> None:
        if self.since is not None:
            waited = time.perf_counter() - self.since
            metrics.REFRESH_LOCK_WAIT.labels(self.connector, outcome).observe(waited)
            self.since = None


@asynccontextmanager
async def holding(ctx: Context, connection_id: str) -> AsyncIterator[HeldLock | None]:
    """The connection's refresh lock, taken without waiting (None: someone else holds it)
    and released on the way out."""
    key, ttl = keys.refresh_lock(connection_id), ctx.settings.refresh_lock_ttl
    asked = time.monotonic()
    owner = await ctx.store.acquire(key, ttl)
    if owner is None:
        yield None
        return
    try:
        yield HeldLock(Fence(key, owner), ttl, asked + ttl)
    finally:
        await ctx.store.release(key, owner)
