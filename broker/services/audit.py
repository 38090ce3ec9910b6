"""The audit log: who read or changed what, when, and how it went. Never a value.

Entries are buffered in memory and written once a second as one sealed batch per tenant
(`{audit_<tenant>}:<time>-<replica>-<seq>`, expiring after the retention period), so a secret
read on the hot path costs a list append, not a store write. The price: entries of the last
second are lost if the process is killed; a clean shutdown flushes them.
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
        self._buffer: list[dict[str, Any]] = []
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
        if len(self._buffer) >= MAX_BUFFER:
            # the store has been failing for a while: keep the newest entries, count the rest
            self._buffer.pop(0)
            self.dropped += 1
        self._buffer.append(
            {
                "at": self._clock(),
                "actor": actor,
                "action": action,
                "tenant_id": tenant_id,
                "connection_id": connection_id,
                "name": name,
                "outcome": outcome,
            }
        )

    async def flush(self) -> None:
        if not self._buffer:
            return
        pending, self._buffer = self._buffer, []
        by_tenant: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in pending:
            by_tenant[entry["tenant_id"]].append(entry)
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
            self._buffer[:0] = failed  # try again next time, oldest first
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
