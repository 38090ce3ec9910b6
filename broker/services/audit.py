"""The audit log: who read or changed what, when, and how it went. Never a value.

Entries are buffered in memory and written once a second as one sealed batch per tenant
(`{audit_<tenant>}:<time>-<replica>-<seq>`, expiring after the retention period), so a secret
read on the hot path costs a dict update, not a store write. Identical events within one
flush (the same actor reading the same name with the same outcome) become one entry with a
`count` and the first and last time: a runtime reading its key 10,000 times a second yields
one line a second, not 10,000. The price: the last second is lost if the process is killed;
a clean shutdown flushes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from broker.errors import StoreUnavailable
from broker.store import keys
from broker.store.sealed import SealedStore

log = logging.getLogger("broker.audit")

MAX_BUFFER = 100_000
FLUSH_INTERVAL = 1.0


class AuditLog:
    def __init__(self, store: SealedStore, clock: Callable[[], float], retention: float) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention
        self._buffer: dict[tuple[str, str, str, str | None, str | None, str], list[float]] = {}
        self._replica = secrets.token_hex(4)
        self._seq = 0
        self.dropped = 0

    def record(
        self,
        *,
        actor: str,
        action: str,
        tenant_id: str,
        connection_id: str | None = None,
        name: str | None = None,
        outcome: str = "ok",
    ) -> None:
        now = self._clock()
        event = (actor, action, tenant_id, connection_id, name, outcome)
        seen = self._buffer.get(event)
        if seen is not None:
            seen[1] = now
            seen[2] += 1
            return
        if len(self._buffer) >= MAX_BUFFER:
            # the store has been failing for a while: keep the newest events, count the rest
            del self._buffer[next(iter(self._buffer))]
            self.dropped += 1
        self._buffer[event] = [now, now, 1]

    async def flush(self) -> None:
        if not self._buffer:
            return
        pending, self._buffer = self._buffer, {}
        by_tenant: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (actor, action, tenant_id, connection_id, name, outcome), (
            first,
            last,
            count,
        ) in pending.items():
            by_tenant[tenant_id].append(
                {
                    "at": last,
                    "first_at": first,
                    "count": int(count),
                    "actor": actor,
                    "action": action,
                    "tenant_id": tenant_id,
                    "connection_id": connection_id,
                    "name": name,
                    "outcome": outcome,
                }
            )
        failed: list[dict[str, Any]] = []
        for tenant_id, entries in by_tenant.items():
            self._seq += 1
            suffix = f"{int(self._clock() * 1000):013d}-{self._replica}-{self._seq}"
            try:
                await self._store.put_ttl(
                    keys.audit_batch(tenant_id, suffix),
                    json.dumps(entries).encode(),
                    self._retention,
                )
            except StoreUnavailable:
                failed.extend(entries)
        if failed:
            for entry in failed:  # try again next time, merged with what came since
                event = (
                    entry["actor"],
                    entry["action"],
                    entry["tenant_id"],
                    entry["connection_id"],
                    entry["name"],
                    entry["outcome"],
                )
                newer = self._buffer.get(event)
                merged = [entry["first_at"], entry["at"], entry["count"]]
                if newer is not None:
                    merged = [entry["first_at"], newer[1], entry["count"] + newer[2]]
                self._buffer[event] = merged
            log.warning("audit flush failed for %d entries; will retry", len(failed))

    async def run(self) -> None:
        """Flush every second until cancelled; the final flush happens in `close`."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def query(
        self, tenant_id: str, connection_id: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Newest first. Flushes this replica's buffer first so its own entries show up."""
        await self.flush()
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        prefix = keys.audit_prefix(tenant_id)
        while True:
            page = await self._store.scan(prefix, cursor)
            for entry in page.entries:
                entries.extend(
                    e
                    for e in json.loads(entry.value)
                    if connection_id is None or e["connection_id"] == connection_id
                )
            cursor = page.cursor
            if cursor is None:
                break
        entries.sort(key=lambda e: e["at"], reverse=True)
        return entries[:limit]
