"""The audit log: who read or changed what, when, and how it went. Never a value.

Entries are buffered in memory and written once a second as one sealed batch per tenant
(`{audit_<tenant>}:<time>-<replica>-<seq>`, expiring after the retention period), so a secret
read on the hot path costs a dict update, not a store write. Identical events within one
flush (the same actor reading the same name with the same outcome) become one entry with a
`count` and the first and last time: a runtime reading its key 10,000 times a second yields
one line a second, not 10,000. The price: the last second is lost if the process is killed;
a clean shutdown flushes it.

A name the caller chose (a secret name a runtime is not granted) is kept for the first
`NAMES_PER_MINUTE` distinct names per connection and minute; further ones go into one entry
without a name, which counts them. Otherwise every made-up name would be its own entry, and
one runtime could write without bound (and push real events out of the buffer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from broker import metrics
from broker.errors import InvalidRequest
from broker.services.record_ids import time_key
from broker.store import keys
from broker.store.sealed import SealedStore

log = logging.getLogger("broker.audit")

MAX_BUFFER = 100_000
FLUSH_INTERVAL = 1.0
BATCH_PAGE = 50
"""Batches fetched per round trip when reading."""
MAX_BATCHES_READ = 1000
"""Batches one query reads at most before answering with a cursor."""
NAMES_PER_MINUTE = 20
"""Distinct caller-chosen names one connection gets into the log per minute."""


class AuditLog:
    def __init__(self, store: SealedStore, clock: Callable[[], float], retention: float) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention
        self._buffer: dict[tuple[str, str, str, str | None, str | None, str], list[float]] = {}
        self._replica = secrets.token_hex(4)
        self._seq = 0
        self.dropped = 0
        self._minute = 0
        self._names: dict[str | None, set[str]] = {}
        """Caller-chosen names kept this minute, by connection (cleared each minute)."""

    def record(
        self,
        *,
        actor: str,
        action: str,
        tenant_id: str,
        connection_id: str | None = None,
        name: str | None = None,
        outcome: str = "ok",
        untrusted_name: bool = False,
    ) -> None:
        """`untrusted_name`: the caller chose `name`, so it is one of many only within a
        budget (see the module docstring)."""
        now = self._clock()
        if untrusted_name and name is not None and not self._admits(connection_id, name, now):
            name = None
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

    def _admits(self, connection_id: str | None, name: str, now: float) -> bool:
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._names = minute, {}
        kept = self._names.setdefault(connection_id, set())
        if name in kept:
            return True
        if len(kept) >= NAMES_PER_MINUTE:
            return False
        kept.add(name)
        return True

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
            now = self._clock()
            batch_id = f"{time_key(now)}-{self._replica}-{self._seq}"
            index = keys.audit_index(tenant_id)
            try:
                # indexed first: a crash in between leaves an id that reads as missing
                await self._store.index_add(index, batch_id, self._retention)
                await self._store.put_ttl(
                    keys.audit_batch(tenant_id, batch_id),
                    json.dumps(entries).encode(),
                    self._retention,
                )
                await self._store.index_trim(index, self._floor(now))
            except Exception as exc:  # one tenant's batch failing must not lose the others'
                metrics.background_error(log, "audit-flush", exc)
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

    def _floor(self, now: float) -> str:
        """Below every batch id inside the retention (ids start with their 13-digit ms)."""
        return time_key(now - self._retention)

    async def run(self) -> None:
        """Flush every second until cancelled; the final flush happens in `close`."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception as exc:  # not BaseException: cancellation ends the loop
                metrics.background_error(log, "audit-flush", exc)

    async def query(
        self,
        tenant_id: str,
        connection_id: str | None = None,
        limit: int = 500,
        before: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (by the flush that wrote them: replicas interleave within a second),
        at most `limit` entries, and the cursor to pass as `before` for older ones (None:
        there are none). Batches are read through the tenant's index, at most
        `MAX_BATCHES_READ` per call, so a narrow filter over a long history answers a short
        page and a cursor instead of reading the whole retention period. This replica's
        buffer is flushed first so that its own entries show up."""
        pending: list[str] = []
        skip, upper = 0, None
        if before is not None:
            pending, skip, upper = _parse_cursor(before)
        await self.flush()
        index = keys.audit_index(tenant_id)
        found: list[dict[str, Any]] = []
        read = 0
        resume_at = upper  # the last batch read: where a cursor can send the next call
        while True:
            if not pending:
                if read >= MAX_BATCHES_READ:
                    return found, resume_at
                members = await self._store.index_range(
                    index,
                    after=self._floor(self._clock()),  # past the retention: gone, trimmed or not
                    before=upper,
                    limit=BATCH_PAGE,
                    descending=True,
                )
                if not members:
                    return found, None
                upper = members[-1]
                # an id we did not write (the store is untrusted) is passed over
                pending = [b for b in members if _BATCH_ID.fullmatch(b)]
            loaded = await asyncio.gather(
                *(self._store.get(keys.audit_batch(tenant_id, b)) for b in pending)
            )
            for batch_id, batch in zip(pending, loaded, strict=True):
                read, resume_at = read + 1, batch_id
                rows = [] if batch is None else json.loads(batch[0])
                if connection_id is not None:
                    rows = [e for e in rows if e["connection_id"] == connection_id]
                rows.sort(key=lambda e: e["at"], reverse=True)  # stable: a cursor's offset holds
                room = limit - len(found)
                if len(rows) - skip > room:
                    found.extend(rows[skip : skip + room])
                    return found, f"{batch_id}.{skip + room}"
                found.extend(rows[skip:])
                skip = 0
                if len(found) == limit:
                    return found, batch_id
            pending = []


_BATCH_ID = re.compile(r"[0-9]{13}-[0-9a-f]{8}-[0-9]{1,18}")
_CURSOR = re.compile(rf"({_BATCH_ID.pattern})(?:\.([0-9]{{1,9}}))?")


def _parse_cursor(cursor: str) -> tuple[list[str], int, str]:
    """(batches to read first, entries of the first to skip, the index bound): `<batch>`
    means the batches older than it, `<batch>.<n>` that batch from its n-th entry on."""
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidRequest("before must be the `next` cursor of an earlier page")
    batch_id, offset = match.groups()
    if offset is None:
        return [], 0, batch_id
    return [batch_id], int(offset), batch_id
