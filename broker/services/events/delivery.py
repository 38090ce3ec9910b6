"""The event worker: finishes interrupted outbox moves and pushes events to the platform.

Every replica runs one (like the refresher), driven by the store's due-time index:
- `{<stream>}:outbox:<event id>` entries are events an emitter left in an outbox
  (`outbox`): the worker moves them into the log;
- `{<stream>}:events` entries are push queues (`records.EventQueue`): the worker POSTs the
  queue's head to `BROKER_EVENTS_URL`, signed the Standard Webhooks way, and goes on to the
  next only after a 2xx, so a stream's events arrive in order. A failure backs off
  exponentially (`BROKER_EVENTS_RETRY_BASE` doubling up to `BROKER_EVENTS_RETRY_MAX`,
  jittered), recorded in the event's log record and the due index, so a restarted broker
  resumes where it stopped. Events are retried until their log record expires
  (`BROKER_EVENTS_RETENTION`).
A queue is worked under its delivery lock, so replicas never push one stream twice at once.
Delivery is at-least-once: a broker dying between a receiver's 2xx and recording it pushes
that event again (same `webhook-id`, for the receiver to deduplicate).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

import aiohttp

import broker.services.events.outbox as event_outbox
from broker import metrics
from broker.config import events_signing_key
from broker.errors import VersionConflict
from broker.services import cas, records
from broker.services.context import Context
from broker.services.events.log import payload
from broker.services.polling import poll_forever
from broker.services.records import Delivery, Event, EventQueue, LoggedEvent
from broker.store import keys

log = logging.getLogger("broker.events")

SEND_TIMEOUT = 10.0
LOCK_TTL = 30.0
HOLD_BUDGET = 15.0
"""Seconds one turn may keep starting deliveries: with `SEND_TIMEOUT`, a turn ends well
inside `LOCK_TTL`, so no other replica can take over a stream that is still being worked."""


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class EventWorker:
    def __init__(
        self,
        ctx: Context,
        *,
        interval: float = 0.5,
        batch: int = 500,
        concurrency: int = 16,
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        secret = ctx.settings.events_secret
        self._key = events_signing_key(secret.get_secret_value()) if secret else None
        self.delivered = 0
        self.failed = 0

    @property
    def pushing(self) -> bool:
        """Whether this replica pushes (queues wait for one that does otherwise)."""
        return self._key is not None and bool(self.ctx.settings.events_url)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until cancelled or `stop` is set (the turn under way ends first)."""
        await poll_forever(
            "event-worker", self.run_once, batch=self.batch, interval=self.interval, stop=stop
        )

    async def run_once(self) -> int:
        # the due index is shared with the refresher: take only our entries
        items = await self.ctx.store.due(self.ctx.clock(), self.batch)
        left_behind: dict[str, list[str]] = defaultdict(list)
        queues: list[str] = []
        for item in items:
            part = keys.part(item.key)
            if not part.startswith("outbox:") and not (part == "events" and self.pushing):
                continue
            try:
                stream = keys.record_id(item.key)
            except ValueError as exc:  # not a key the broker wrote: the store is untrusted
                metrics.background_error(log, "event-worker", exc)
                continue
            if part == "events":
                queues.append(stream)
            else:
                left_behind[stream].append(item.key)
        # the due index is shared: every replica's worker sees the same backlog
        metrics.EVENT_OUTBOX_DEPTH.set(sum(len(due) for due in left_behind.values()))
        metrics.EVENT_QUEUES_DUE.set(len(queues))
        jobs = [self._guarded(s, self._recover(s, due)) for s, due in left_behind.items()]
        jobs += [self._guarded(stream, self.deliver(stream)) for stream in queues]
        await asyncio.gather(*jobs)
        return len(jobs)

    async def _guarded(self, stream: str, job: Coroutine[Any, Any, None]) -> None:
        # one stream's failure, whatever it is, must not stop the others' deliveries
        async with self._slots:
            try:
                await job
            except Exception as exc:
                metrics.background_error(log, "event-worker", exc, item=stream)

    async def _recover(self, stream: str, due_keys: list[str]) -> None:
        if not await event_outbox.move(self.ctx, stream):
            return  # someone is moving this outbox right now
        # whatever was left is in the log now; an entry whose event was never written (its
        # CAS write lost) has nothing to move
        for key in due_keys:
            await self.ctx.store.unschedule(key)

    async def deliver(self, stream: str) -> None:
        """Push the stream's queued events in order, until one fails or the turn ends."""
        lock = keys.event_delivery_lock(stream)
        owner = await event_outbox.acquire(self.ctx, lock, LOCK_TTL)
        if owner is None:
            return  # another replica is working this stream
        try:
            await self._drain(stream)
        finally:
            await self.ctx.store.release(lock, owner)

    async def _drain(self, stream: str) -> None:
        store, clock = self.ctx.store, self.ctx.clock
        key = keys.event_queue(stream)
        started = clock()
        while True:
            found = await records.load(store, key, EventQueue)
            if found is None or not found[0].pending:
                await store.unschedule(key)
                if await self._forget(key, found):
                    return
                continue  # an event was queued meanwhile
            queue = found[0]
            head = queue.pending[0]
            now = clock()
            logged = await records.load(store, keys.event(head), LoggedEvent)
            if logged is None or logged[0].expires_at <= now:
                log.warning("event %s expired before it could be delivered", head)
                await self._pop(key, head)
                continue
            record = logged[0]
            if record.delivery.delivered_at is not None:
                await self._pop(key, head)  # delivered by a turn that died before popping
                continue
            due_at = record.delivery.next_attempt_at
            if due_at is not None and due_at > now:
                await store.schedule(key, due_at)
                return
            if now - started > HOLD_BUDGET:
                await store.schedule(key, now)  # the rest in the next turn
                return
            error = await self._send(record.event)
            if not await self._record(key, record, error):
                return

    async def _forget(self, key: str, found: tuple[EventQueue, int] | None) -> bool:
        """After unscheduling an empty or missing queue: delete it, unless an event was
        queued meanwhile (False). One queued after the unschedule schedules it again."""
        if found is None:
            return await self.ctx.store.get(key) is None
        try:
            await self.ctx.store.delete(key, expect_version=found[1])
        except VersionConflict:
            return False
        return True

    async def _record(self, queue_key: str, record: LoggedEvent, error: str | None) -> bool:
        """Store the attempt; True to go on with the next event."""
        now = self.ctx.clock()
        attempts = record.delivery.attempts + 1
        if error is None:
            delivery = Delivery(attempts=attempts, delivered_at=now)
        else:
            settings = self.ctx.settings
            delay = settings.events_retry_base * 2 ** min(attempts - 1, 30)
            delay = min(settings.events_retry_max, delay * random.uniform(0.8, 1.2))
            delivery = Delivery(attempts=attempts, next_attempt_at=now + delay, last_error=error)
        updated = record.model_copy(update={"delivery": delivery})
        ttl = max(1.0, record.expires_at - now)
        await records.save_ttl(self.ctx.store, keys.event(record.event.id), updated, ttl)
        metrics.EVENT_DELIVERIES.labels("delivered" if error is None else "failed").inc()
        if error is None:
            metrics.EVENT_DELIVERY_LAG.observe(now - record.event.created_at)
            self.delivered += 1
            await self._pop(queue_key, record.event.id)
            return True
        self.failed += 1
        log.info("event %s: delivery attempt %d failed (%s)", record.event.id, attempts, error)
        assert delivery.next_attempt_at is not None
        await self.ctx.store.schedule(queue_key, delivery.next_attempt_at)
        return False

    async def _pop(self, key: str, event_id: str) -> None:
        async def remove(queue: EventQueue | None) -> EventQueue | None:
            if queue is None or event_id not in queue.pending:
                return None
            pending = [i for i in queue.pending if i != event_id]
            return queue.model_copy(update={"pending": pending})

        # a lost write is an enqueue: read again
        await cas.update(
            self.ctx.store,
            key,
            EventQueue,
            remove,
            contended=f"the event queue {key} kept changing",
        )

    async def _send(self, event: Event) -> str | None:
        """POST one event; None on a 2xx, else a short error code."""
        url = self.ctx.settings.events_url
        assert self._key is not None
        assert url is not None
        body = json.dumps(payload(event), separators=(",", ":")).encode()
        timestamp = int(self.ctx.clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, event.id, timestamp, body),
        }
        try:
            async with self.ctx.http.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,  # a redirect is not an acknowledgement
                timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT),
            ) as resp:
                return None if 200 <= resp.status < 300 else f"http_{resp.status}"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "unreachable"
