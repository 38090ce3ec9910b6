"""The Redis backend (standalone, Cluster, Sentinel): `RedisStore` (`store`) and the pieces it
is built from: `connect` (URL to client), `layout` (every Redis key it writes), `scripts`
(the Lua of each read-modify-write), `batch` (`put_many`'s pipeline), `scan` (paged SCAN),
`change_feed` (pub/sub of every durable write)."""

from __future__ import annotations

from broker.store.redis.store import RedisStore

__all__ = ["RedisStore"]
