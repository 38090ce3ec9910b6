"""Proactive refresh: every replica works through the store's due-time index in the
background, so runtimes almost never wait on a provider.

The due entry of a refresh that died mid-way comes back when its lock runs out; its journal
(`journal`) then brings the connection here even though its token is not yet due, and the
lock holder finishes it (`recovery`).

Replicas never refresh one connection twice: each item is handled under the connection's
refresh lock, taken without waiting (a held lock means another replica is on it). Polling is
jittered and concurrency bounded, and the index is read from a random partition onward, so
replicas spread over the work instead of fighting for the same items.
"""

from __future__ import annotations

import asyncio
import logging

import broker.services.refresh.journal as journal
from broker import metrics
from broker.errors import NotFound
from broker.services.context import Context
from broker.services.polling import poll_forever
from broker.services.records import load_connection
from broker.services.refresh.engine import refresh_locked
from broker.services.refresh.lock import holding
from broker.services.refresh.outcome import idle_interval, schedule_next
from broker.services.refresh.policy import proactive_due
from broker.store import keys

log = logging.getLogger("broker.refresher")


class Refresher:
    def __init__(
        self, ctx: Context, *, interval: float = 0.5, batch: int = 200, concurrency: int = 32
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self.refreshed = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until cancelled or `stop` is set (the turn under way ends first)."""
        await poll_forever(
            "refresher", self.run_once, batch=self.batch, interval=self.interval, stop=stop
        )

    async def run_once(self) -> int:
        items = await self.ctx.store.due(self.ctx.clock(), self.batch)
        # the event worker's entries share the index (`events.delivery`)
        items = [item for item in items if keys.part(item.key) == "record"]
        await asyncio.gather(*(self._guarded(item.key) for item in items))
        return len(items)

    async def _guarded(self, key: str) -> None:
        # one connection's failure, whatever it is, must not stop the others' refreshes
        async with self._slots:
            try:
                await self.handle(keys.record_id(key))
            except Exception as exc:
                self.failed += 1
                metrics.background_error(log, "refresher", exc, item=key)

    async def handle(self, connection_id: str) -> None:
        ctx = self.ctx
        try:
            conn, _ = await load_connection(ctx.store, connection_id)
        except NotFound:
            await ctx.store.unschedule(keys.connection(connection_id))
            return
        margin, idle = ctx.settings.refresh_margin, idle_interval(ctx, conn)
        due = proactive_due(conn, ctx.clock(), margin, idle)
        # an interrupted refresh schedules its journal's recovery (`journal.begin`)
        if not due and (conn.status != "active" or await journal.read(ctx, connection_id) is None):
            await schedule_next(ctx, conn)  # stale index entry: put it where it belongs
            return
        async with holding(ctx, connection_id) as held:
            if held is None:
                return  # another replica (or an on-demand caller) is refreshing it
            await refresh_locked(
                ctx,
                connection_id,
                held,
                min_ttl=ctx.settings.refresh_margin,
                force=False,
                since=ctx.clock(),
                proactive=True,
            )
            self.refreshed += 1
