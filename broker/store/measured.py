"""Every store call timed, and its failures counted, per backend and operation: one wrapper
around the backend, under the sealed layer, so every caller (services, the read cache's
fills, the rewrap, readiness) is measured without any of them knowing.

A lost compare-and-set (`VersionConflict`) or fence (`LockLost`) is the store answering,
not failing: it is timed, not counted as an error. The error label is the broker's error
code (`store_unavailable` for an outage or a deadline), or `other`: never an exception's
text, which can quote a key or a value.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import Literal, TypeVar, get_args

from prometheus_client import Histogram

from broker import metrics
from broker.errors import BrokerError, LockLost, VersionConflict
from broker.store.base import DueItem, Fence, PutItem, ScanPage, Store

T = TypeVar("T")

Operation = Literal[
    "get",
    "put",
    "put_fenced",
    "put_many",
    "delete",
    "scan",
    "put_ttl",
    "take",
    "acquire",
    "release",
    "rate_limit",
    "schedule",
    "unschedule",
    "due",
    "index_add",
    "index_range",
    "index_trim",
    "ping",
]
OPERATIONS: tuple[Operation, ...] = get_args(Operation)


def backend_name(url: str) -> str:
    """The `backend` label of a `BROKER_STORE` URL: its scheme's family, never the URL (it
    can carry a password)."""
    return "sqlite" if url.startswith("sqlite:") else "redis"


class MeasuredStore:
    """A `Store` that times and counts every call of the one it wraps."""

    def __init__(self, inner: Store, backend: str) -> None:
        self._inner = inner
        self._backend = backend
        # the labelled children once, not per call
        self._timers: dict[str, Histogram] = {
            op: metrics.STORE_DURATION.labels(backend, op) for op in OPERATIONS
        }

    async def _measured(self, op: Operation, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except (VersionConflict, LockLost):
            raise
        except Exception as exc:
            error = exc.code if isinstance(exc, BrokerError) else "other"
            metrics.STORE_ERRORS.labels(self._backend, op, error).inc()
            raise
        finally:
            self._timers[op].observe(time.perf_counter() - started)

    async def get(self, key: str) -> tuple[bytes, int] | None:
        return await self._measured("get", self._inner.get(key))

    async def put(self, key: str, value: bytes, expect_version: int | None = None) -> int:
        return await self._measured("put", self._inner.put(key, value, expect_version))

    async def put_fenced(
        self, key: str, value: bytes, expect_version: int | None, fence: Fence
    ) -> int:
        call = self._inner.put_fenced(key, value, expect_version, fence)
        return await self._measured("put_fenced", call)

    async def put_many(
        self, items: Sequence[PutItem], *, keep_ttl: bool = False
    ) -> list[int | None]:
        return await self._measured("put_many", self._inner.put_many(items, keep_ttl=keep_ttl))

    async def delete(self, key: str, expect_version: int | None = None) -> bool:
        return await self._measured("delete", self._inner.delete(key, expect_version))

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        return await self._measured("scan", self._inner.scan(prefix, cursor, limit))

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        return await self._measured("put_ttl", self._inner.put_ttl(key, value, ttl))

    async def take(self, key: str) -> bytes | None:
        return await self._measured("take", self._inner.take(key))

    async def acquire(self, key: str, ttl: float) -> str | None:
        return await self._measured("acquire", self._inner.acquire(key, ttl))

    async def release(self, key: str, token: str) -> bool:
        return await self._measured("release", self._inner.release(key, token))

    async def rate_limit(self, key: str, rate: float, burst: float, cost: float = 1) -> float:
        return await self._measured("rate_limit", self._inner.rate_limit(key, rate, burst, cost))

    async def schedule(self, key: str, at: float) -> None:
        await self._measured("schedule", self._inner.schedule(key, at))

    async def unschedule(self, key: str) -> None:
        await self._measured("unschedule", self._inner.unschedule(key))

    async def due(self, now: float, limit: int) -> list[DueItem]:
        return await self._measured("due", self._inner.due(now, limit))

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        await self._measured("index_add", self._inner.index_add(index, member, ttl))

    async def index_range(
        self,
        index: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[str]:
        call = self._inner.index_range(
            index, after=after, before=before, limit=limit, descending=descending
        )
        return await self._measured("index_range", call)

    async def index_trim(self, index: str, below: str) -> int:
        return await self._measured("index_trim", self._inner.index_trim(index, below))

    async def ping(self) -> None:
        await self._measured("ping", self._inner.ping())

    async def close(self) -> None:
        await self._inner.close()
