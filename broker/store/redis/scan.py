"""Paged prefix scan over SCAN MATCH, on one server or on every primary of a Cluster.

The opaque cursor carries (primary index, Redis SCAN cursor, pending keys). Primaries are
visited one after another in name order. SCAN may hand back more matches than a page may
hold (COUNT is a hint, and a bucket is returned whole); those keys ride along in the cursor
as `pending` and open the next page, so no match is ever dropped to honour `limit`.

Guarantees follow SCAN's: a key present for the whole scan is returned; a key written or
deleted meanwhile may or may not be. SCAN can repeat a key if the keyspace shrinks (a mass
delete) mid-scan; repeats are removed within a page but not across pages. On a Cluster,
a reshard or failover during the scan can likewise miss or repeat keys of the moved slots.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from broker.store.base import Entry, ScanPage
from broker.store.redis.connect import Client
from broker.store.redis.layout import Layout

_MIN_COUNT = 100
"""SCAN COUNT floor: with a tiny `limit` a small COUNT would crawl a large keyspace."""


@dataclass(slots=True)
class _Cursor:
    node: int = 0
    redis_cursor: int = 0
    pending: list[str] = field(default_factory=list)

    def encode(self) -> str:
        raw = json.dumps([self.node, self.redis_cursor, self.pending], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, text: str) -> _Cursor:
        try:
            node, redis_cursor, pending = json.loads(base64.urlsafe_b64decode(text))
        except (ValueError, TypeError, binascii.Error):
            raise ValueError("invalid scan cursor") from None
        if not (
            isinstance(node, int)
            and isinstance(redis_cursor, int)
            and node >= 0
            and redis_cursor >= 0
            and isinstance(pending, list)
            and all(isinstance(k, str) for k in pending)
        ):
            raise ValueError("invalid scan cursor")
        return cls(node, redis_cursor, pending)


def _primaries(client: Client) -> list[ClusterNode | None]:
    if isinstance(client, RedisCluster):
        primaries: list[ClusterNode] = client.get_primaries()
        return [*sorted(primaries, key=lambda n: n.name)]
    return [None]


async def _scan_once(
    client: Client, node: ClusterNode | None, cursor: int, pattern: str, count: int
) -> tuple[int, list[bytes]]:
    if node is None or not isinstance(client, RedisCluster):
        result: Any = await client.scan(cursor=cursor, match=pattern, count=count)
        next_cursor, keys = result
        return int(next_cursor), list(keys)
    result = await client.scan(cursor=cursor, match=pattern, count=count, target_nodes=node)
    cursors, keys = result  # the cluster client reports cursors per node name
    return int(cursors[node.name]), list(keys)


async def scan_page(
    client: Client, layout: Layout, prefix: str, cursor: str | None, limit: int, budget: float
) -> ScanPage:
    """One page. Stops early (a short or empty page with a cursor) once `budget` seconds
    are spent, so a sparse prefix in a big keyspace cannot exceed the caller's deadline."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    state = _Cursor.decode(cursor) if cursor else _Cursor()
    nodes = _primaries(client)
    pattern = layout.scan_pattern(prefix)
    count = max(limit, _MIN_COUNT)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + budget
    page: list[str] = []
    seen = set(state.pending)
    scanned = False
    while len(page) < limit:
        if state.pending:
            room = limit - len(page)
            page.extend(state.pending[:room])
            del state.pending[:room]
            continue
        if state.node >= len(nodes) or (scanned and loop.time() > give_up_at):
            break
        state.redis_cursor, keys = await _scan_once(
            client, nodes[state.node], state.redis_cursor, pattern, count
        )
        scanned = True
        for raw in keys:
            key = layout.store_key(raw)
            if key is not None and key not in seen:
                seen.add(key)
                state.pending.append(key)
        if state.redis_cursor == 0:
            state.node += 1
    entries = await _fetch(client, layout, page)
    done = state.node >= len(nodes) and not state.pending
    return ScanPage(entries, None if done else state.encode())


async def _fetch(client: Client, layout: Layout, keys: list[str]) -> list[Entry]:
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(layout.record(key), ["v", "n"])
    rows: list[Any] = await pipe.execute()
    return [
        Entry(key, bytes(value), int(version))
        for key, (value, version) in zip(keys, rows, strict=True)
        if value is not None and version is not None  # vanished since SCAN saw it
    ]
