"""The Redis backend of the Store protocol (standalone, Cluster, Sentinel) on redis-py asyncio.

Key layout: `layout`. Every read-modify-write is one single-key Lua script (`scripts`) run
by EVALSHA, so it is atomic on a Cluster too; `put_many` pipelines them (`batch`), `scan`
walks SCAN MATCH (`scan`), `watch_changes` listens on pub/sub (`change_feed`).

Failure policy: each call runs under `asyncio.timeout(timeout)` (connecting has a socket
timeout of the same length; replies have none of their own, the call's deadline bounds them),
and every Redis, socket or timeout error becomes `StoreUnavailable` naming
the operation only (never a key's value). Connections are re-established lazily by redis-py,
so the same store object works again once Redis is back.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from broker.errors import LockLost, StoreUnavailable, VersionConflict
from broker.store.base import (
    DueItem,
    Fence,
    PutItem,
    ScanPage,
    check_fence,
    check_index,
    check_rate,
)
from broker.store.redis import rates
from broker.store.redis import scripts as lua
from broker.store.redis.batch import put_pipelined
from broker.store.redis.change_feed import watch_changes
from broker.store.redis.connect import Client, connect
from broker.store.redis.due import due_items
from broker.store.redis.layout import DUE_PARTITIONS, Layout
from broker.store.redis.scan import scan_page

T = TypeVar("T")
RESERVED_CONNECTIONS = 4


def _ms(ttl: float) -> int:
    if not ttl > 0:
        raise ValueError("ttl must be positive")
    return max(1, math.ceil(ttl * 1000))


class RedisStore:
    def __init__(
        self,
        client: Client,
        close: Callable[[], Awaitable[None]],
        layout: Layout,
        timeout: float,
        max_connections: int,
    ) -> None:
        self._client = client
        self._close_client = close
        self._layout = layout
        self._timeout = timeout
        self._closed = False
        # Each call in flight holds one connection. The Cluster client fails outright when a
        # node's pool is full, so a burst waits here instead, inside the call's deadline.
        self._slots = asyncio.Semaphore(max_connections)
        self._put = client.register_script(lua.PUT)
        self._put_fenced = client.register_script(lua.PUT_FENCED)
        self._cas_delete = client.register_script(lua.CAS_DELETE)
        self._take = client.register_script(lua.TAKE)
        self._release = client.register_script(lua.RELEASE)
        self._index_add = client.register_script(lua.INDEX_ADD)
        self._take_tokens = client.register_script(rates.TAKE_TOKENS)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        namespace: str = "broker",
        timeout: float = 2.0,  # noqa: ASYNC109 - a per-call deadline, not this call's
        max_connections: int = 100,
        due_partitions: int = DUE_PARTITIONS,
    ) -> RedisStore:
        """Connect and check that Redis answers (StoreUnavailable if it does not), so a
        wrong URL or password fails at startup rather than on the first request.

        `timeout` bounds every call; `max_connections` caps calls in flight, and so the
        connections to any one node; `due_partitions` is part of the stored format (see
        `layout`)."""
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        layout = Layout(namespace, due_partitions)
        # the pool has room beyond the calls in flight for the long-lived change-feed
        # subscription, so a burst of calls can never starve it (or be refused for it)
        connected = connect(url, timeout, max_connections + RESERVED_CONNECTIONS)
        store = cls(connected.client, connected.close, layout, timeout, max_connections)
        try:
            await store.ping()
        except BaseException:
            await store.close()
            raise
        return store

    async def _run(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise StoreUnavailable(f"redis {op}: the store is closed")
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                return await call()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            raise StoreUnavailable(f"redis {op} failed: {type(exc).__name__}") from exc

    async def get(self, key: str) -> tuple[bytes, int] | None:
        name = self._layout.record(key)
        row: list[Any] = await self._run("get", lambda: self._client.hmget(name, ["v", "n"]))
        value, version = row
        if value is None or version is None:
            return None
        return bytes(value), int(version)

    async def put(self, key: str, value: bytes, expect_version: int | None = None) -> int:
        if expect_version is not None and expect_version < 0:
            raise ValueError("expect_version must be None or >= 0")
        expect = "" if expect_version is None else str(expect_version)
        return await self._write("put", key, value, expect, "")

    async def put_fenced(
        self, key: str, value: bytes, expect_version: int | None, fence: Fence
    ) -> int:
        check_fence(key, fence)
        if expect_version is not None and expect_version < 0:
            raise ValueError("expect_version must be None or >= 0")
        names = [self._layout.record(key), self._layout.lock(fence.lock)]
        expect = "" if expect_version is None else str(expect_version)
        args: list[bytes | str] = [value, expect, "", self._layout.changes_channel, fence.owner]
        result = int(await self._run("put", lambda: self._put_fenced(keys=names, args=args)))
        if result == lua.LOCK_LOST:
            raise LockLost(f"{key}: the lock {fence.lock} is no longer held")
        if result == lua.CONFLICT:
            raise VersionConflict(f"{key}: expected version {expect}")
        return result

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        return await self._write("put_ttl", key, value, "", str(_ms(ttl)))

    async def _write(self, op: str, key: str, value: bytes, expect: str, ttl_ms: str) -> int:
        name = self._layout.record(key)
        args: list[bytes | str] = [value, expect, ttl_ms, self._layout.changes_channel]
        result = await self._run(op, lambda: self._put(keys=[name], args=args))
        version = int(result)
        if version == lua.CONFLICT:
            raise VersionConflict(f"{key}: expected version {expect}")
        return version

    async def put_many(
        self, items: Sequence[PutItem], *, keep_ttl: bool = False
    ) -> list[int | None]:
        """The PUT script once per item in one non-transactional pipeline: each item stays
        atomic, the batch costs one round trip (per node: redis-py's cluster pipeline splits
        it by slot). The whole batch shares one call deadline, so keep batches modest."""
        if any(e is not None and e < 0 for _, _, e in items):
            raise ValueError("expect_version must be None or >= 0")
        if not items:
            return []
        ttl = lua.KEEP_TTL if keep_ttl else ""
        rows = [(self._layout.record(k), v, "" if e is None else str(e)) for k, v, e in items]
        channel, sha = self._layout.changes_channel, self._put.sha
        versions = await self._run(
            "put_many", lambda: put_pipelined(self._client, sha, channel, rows, ttl)
        )
        return [None if v == lua.CONFLICT else v for v in versions]

    async def delete(self, key: str, expect_version: int | None = None) -> bool:
        name = self._layout.record(key)
        if expect_version is not None and expect_version < 0:
            raise ValueError("expect_version must be None or >= 0")
        args = ["" if expect_version is None else expect_version, self._layout.changes_channel]
        result = int(await self._run("delete", lambda: self._cas_delete(keys=[name], args=args)))
        if result == lua.CONFLICT:
            raise VersionConflict(f"{key}: expected version {expect_version}")
        return result == 1

    async def scan(self, prefix: str, cursor: str | None = None, limit: int = 500) -> ScanPage:
        # half the deadline for SCAN round trips leaves the rest for fetching the values
        return await self._run(
            "scan",
            lambda: scan_page(self._client, self._layout, prefix, cursor, limit, self._timeout / 2),
        )

    async def take(self, key: str) -> bytes | None:
        name = self._layout.record(key)
        value = await self._run("take", lambda: self._take(keys=[name]))
        return None if value is None else bytes(value)

    async def acquire(self, key: str, ttl: float) -> str | None:
        # SET NX PX is one atomic command already: no script needed
        name, token, ms = self._layout.lock(key), secrets.token_urlsafe(24), _ms(ttl)
        won = await self._run("acquire", lambda: self._client.set(name, token, nx=True, px=ms))
        return token if won else None

    async def release(self, key: str, token: str) -> bool:
        name = self._layout.lock(key)
        result = await self._run("release", lambda: self._release(keys=[name], args=[token]))
        return int(result) == 1

    async def rate_limit(self, key: str, rate: float, burst: float, cost: float = 1) -> float:
        check_rate(rate, burst, cost)
        names, args = [self._layout.rate(key)], [repr(rate), repr(burst), repr(cost)]
        reply = await self._run("rate_limit", lambda: self._take_tokens(keys=names, args=args))
        return rates.wait_seconds(reply)

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        check_index(index, member)
        args: list[str | int] = [member, _ms(ttl)]
        name = self._layout.index(index)
        await self._run("index_add", lambda: self._index_add(keys=[name], args=args))

    async def index_range(
        self,
        index: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[str]:
        check_index(index, limit=limit)
        name = self._layout.index(index)
        low = "-" if after is None else "(" + after
        high = "+" if before is None else "(" + before

        async def call() -> list[Any]:
            if descending:
                return await self._client.zrevrangebylex(name, high, low, 0, limit)
            return await self._client.zrangebylex(name, low, high, 0, limit)

        return [bytes(m).decode() for m in await self._run("index_range", call)]

    async def index_trim(self, index: str, below: str) -> int:
        check_index(index)
        name = self._layout.index(index)
        return int(
            await self._run(
                "index_trim", lambda: self._client.zremrangebylex(name, "-", "(" + below)
            )
        )

    async def schedule(self, key: str, at: float) -> None:
        index = self._layout.due_key(key)
        await self._run("schedule", lambda: self._client.zadd(index, {key: at}))

    async def unschedule(self, key: str) -> None:
        index = self._layout.due_key(key)
        await self._run("unschedule", lambda: self._client.zrem(index, key))

    async def due(self, now: float, limit: int) -> list[DueItem]:
        if limit <= 0:
            return []
        return await self._run("due", lambda: due_items(self._client, self._layout, now, limit))

    async def watch_changes(self, on_change: Callable[[str | None], None]) -> None:
        """Call `on_change(store_key)` for every durable write by any replica, until cancelled.
        `on_change(None)` means "forget everything": sent on every (re)subscribe, since
        messages sent while the subscription was down are lost."""
        await watch_changes(
            self._client, self._layout, self._timeout, lambda: self._closed, on_change
        )

    async def ping(self) -> None:
        await self._run("ping", self._ping)

    async def _ping(self) -> None:
        # on a Cluster PING goes to every node, so one lost shard fails the health check
        if isinstance(self._client, RedisCluster):
            await self._client.ping(target_nodes=RedisCluster.ALL_NODES)
        else:
            await self._client.ping()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self._timeout):
                await self._close_client()
        except (RedisError, OSError):
            pass  # closing is best effort: the connections are being dropped anyway
