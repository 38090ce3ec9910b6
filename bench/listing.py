"""Listing cost: a page of GET /v1/events and of GET /v1/audit against the history behind it.

    .venv/bin/python bench/listing.py [--small 1000] [--large 100000] [--reads 200]

For each backend (a SQLite file; Redis at --redis-url under a fresh namespace, deleted
afterwards) it writes an event log and one tenant's audit history of --small entries, times
reading pages of 100 at random points of them (`events.list_after`, `AuditLog.query`, the code
behind the two routes), then grows both to --large entries beside as many unrelated
connection records and times the same reads again. The `large / small` column is the
point: a page read through the ordered index costs the page, not the history. The last row
times one prefix scan over the large log, which is what every page cost when the log was
listed by scanning (the design before the index), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from broker.config import Settings
from broker.crypto import Keyring, save_keyring
from broker.manifest import load_catalog
from broker.services import events, records
from broker.services.audit import AuditLog
from broker.services.context import Context
from broker.services.records import Event, LoggedEvent
from broker.store import keys
from broker.store.base import Store
from broker.store.redis import RedisStore
from broker.store.sealed import SealedStore
from broker.store.sqlite import SqliteStore

PAGE = 100
TENANT = "bench-tenant"
RETENTION = 3600.0
KEYRING = Keyring.generate("k1")


class History:
    """An event log and an audit history, written straight into the store."""

    def __init__(self, store: SealedStore, start: float) -> None:
        self.store = store
        self.start = start
        self.event_ids: list[str] = []
        self.batch_ids: list[str] = []

    async def grow(self, total: int, unrelated: int) -> None:
        chunk = 500
        for first in range(len(self.event_ids), total, chunk):
            await asyncio.gather(*(self._one(i) for i in range(first, min(total, first + chunk))))
        filler = b"x" * 1500  # about a connection record's size
        for first in range(0, unrelated, chunk):
            await self.store.put_many(
                [
                    (keys.connection(f"conn_filler{i:08d}"), filler, None)
                    for i in range(first, min(unrelated, first + chunk))
                ]
            )
        self.event_ids.sort()
        self.batch_ids.sort()

    async def _one(self, i: int) -> None:
        at = self.start + i * 0.001
        event_id = f"evt_{int(at * 1000):013d}00000000{i:08x}"
        event = Event(id=event_id, type="connection.created", created_at=at, data={"i": i})
        logged = LoggedEvent(event=event, stream=keys.GLOBAL_EVENTS, expires_at=at + RETENTION)
        await self.store.index_add(keys.EVENT_LOG, event_id, RETENTION)
        await records.save_ttl(self.store, keys.event(event_id), logged, RETENTION)
        batch_id = f"{int(at * 1000):013d}-00000000-{i}"
        entries = [
            {
                "at": at,
                "first_at": at,
                "count": 1,
                "actor": "runtime:rt_bench",
                "action": "secret.read",
                "tenant_id": TENANT,
                "connection_id": f"conn_{i % 7}",
                "name": "api_key",
                "outcome": "ok",
            }
        ]
        await self.store.index_add(keys.audit_index(TENANT), batch_id, RETENTION)
        await self.store.put_ttl(
            keys.audit_batch(TENANT, batch_id), json.dumps(entries).encode(), RETENTION
        )
        self.event_ids.append(event_id)
        self.batch_ids.append(batch_id)


async def timed_pages(ctx: Context, history: History, reads: int) -> tuple[float, float]:
    """Median milliseconds of one events page and one audit page, at random cursors."""
    rng = random.Random(7)
    event_ms, audit_ms = [], []
    for _ in range(reads):
        after = rng.choice(history.event_ids[: -PAGE - 1])
        started = time.perf_counter()
        page = await events.list_after(ctx, after, PAGE)
        event_ms.append((time.perf_counter() - started) * 1000)
        assert len(page) == PAGE
        assert page[0].id > after
        before = rng.choice(history.batch_ids[PAGE + 1 :])
        started = time.perf_counter()
        entries, more = await ctx.audit.query(TENANT, limit=PAGE, before=before)
        audit_ms.append((time.perf_counter() - started) * 1000)
        assert len(entries) == PAGE
        assert more is not None
    return statistics.median(event_ms), statistics.median(audit_ms)


async def full_scan_ms(store: SealedStore) -> float:
    started = time.perf_counter()
    cursor: str | None = None
    seen = 0
    while True:
        page = await store.scan_raw(keys.EVENT_PREFIX, cursor)
        seen += len(page.entries)
        if (cursor := page.cursor) is None:
            break
    assert seen > 0
    return (time.perf_counter() - started) * 1000


async def run_backend(name: str, inner: Store, args: argparse.Namespace, tmp: Path) -> None:
    sealed = SealedStore(inner, lambda: KEYRING)
    save_keyring(tmp / "keyring.json", KEYRING)
    settings = Settings(store="sqlite:///unused", keyring_file=tmp / "keyring.json")
    settings = settings.model_copy(update={"events_pull_delay": 0.0})
    async with aiohttp.ClientSession() as http:
        ctx = Context(
            settings=settings,
            catalog=load_catalog([]),
            store=sealed,
            http=http,
            audit=AuditLog(sealed, time.time, RETENTION),
        )
        history = History(sealed, time.time() - 600)
        await history.grow(args.small, 0)
        small = await timed_pages(ctx, history, args.reads)
        await history.grow(args.large, args.large)
        large = await timed_pages(ctx, history, args.reads)
        scan = await full_scan_ms(sealed)
    for label, s, lg in (("events page", small[0], large[0]), ("audit page", small[1], large[1])):
        print(f"| {name} | {label} of {PAGE} | {s:.2f} | {lg:.2f} | {lg / s:.2f} |")
    print(f"| {name} | one scan of the event prefix (before the index) | - | {scan:.0f} | - |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, {platform.machine()}; histories of {args.small} "
        f"and {args.large} events and audit batches (+{args.large} connection records)\n"
    )
    print("| store | read | small history, ms | large history, ms | large / small |")
    print("|---|---|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await SqliteStore.open(str(Path(tmp) / "broker.db"), synchronous="NORMAL")
        try:
            await run_backend("sqlite", sqlite, args, Path(tmp))
        finally:
            await sqlite.close()
        namespace = f"bench-listing-{uuid.uuid4().hex[:8]}"
        redis = await RedisStore.open(args.redis_url, namespace=namespace)
        try:
            await run_backend("redis", redis, args, Path(tmp))
        finally:
            await redis.close()
            client = Redis.from_url(args.redis_url)
            names = [k async for k in client.scan_iter(match=f"{namespace}[:#]*", count=1000)]
            for first in range(0, len(names), 1000):
                await client.delete(*names[first : first + 1000])
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
