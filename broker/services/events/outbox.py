"""Moving events from their stream's outbox into the global event log and the push queue.

An event is born inside the record whose change it describes (`records.Outboxed.outbox`),
by the same CAS write as the change: the store has no transactions across hash tags, so
this is what makes "the change happened" and "the event exists" one fact. Moving it out
takes three steps under the stream's outbox lock - log it (`{evt_<id>}:record`, kept for
`BROKER_EVENTS_RETENTION`), queue its id for push delivery, CAS-remove it from the outbox -
each of which can be repeated harmlessly, so a crash anywhere repeats work but neither loses
nor invents an event.

The emitter moves its own events right after its write. Before that write it arms a
due-index entry (`keys.event_outbox_due`, due `RECOVERY_DELAY` later), which makes the
event worker (`delivery`) finish the move if the emitter died in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from broker import metrics
from broker.config import Settings
from broker.services import cas, records
from broker.services.events.ids import retention_floor
from broker.services.records import (
    Connection,
    Event,
    EventQueue,
    GlobalEvents,
    LoggedEvent,
    Outboxed,
)
from broker.store import keys
from broker.store.sealed import SealedStore

log = logging.getLogger("broker.events")

RECOVERY_DELAY = 10.0
"""Seconds after its creation that an event still in an outbox is moved by the worker: far
beyond one store write (2 s deadline), so the entry never fires before its write landed."""
LOCK_TTL = 10.0
LOCK_POLL = (0.01, 0.04)


class EventContext(Protocol):
    """What emitting and moving events needs. A `services.context.Context` is one; so is
    the `Emitter` a command line builds from a store and its settings alone."""

    @property
    def store(self) -> SealedStore: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Callable[[], float]: ...


def stream_record(stream: str) -> tuple[str, type[Outboxed]]:
    """The key and model of the record holding a stream's outbox."""
    if stream == keys.GLOBAL_EVENTS:
        return keys.global_events(), GlobalEvents
    return keys.connection(stream), Connection


async def arm(ctx: EventContext, stream: str, events: Sequence[Event]) -> None:
    """Call before writing `events` into the stream's outbox. An entry whose event never got
    written finds nothing and is dropped; an event written without one could sit in its
    outbox until the stream's next event. The due time depends on the event only, so arming
    again (every write re-arms what is still pending) does not postpone recovery."""
    for event in events:
        await ctx.store.schedule(
            keys.event_outbox_due(stream, event.id), event.created_at + RECOVERY_DELAY
        )


async def acquire(ctx: EventContext, lock: str, ttl: float) -> str | None:
    """`Store.acquire` that gives the lock back when cancelled (a broker shutting down): the
    store may have granted it all the same, and it would hold up the stream for `ttl`."""
    task = asyncio.ensure_future(ctx.store.acquire(lock, ttl))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            owner = await task
            if owner is not None:
                await ctx.store.release(lock, owner)
        raise


async def move(ctx: EventContext, stream: str, *, wait: float = 0.0) -> bool:
    """Move the stream's outbox into the log. False when the outbox lock stayed busy for
    `wait` seconds: its holder moves whatever it reads, the armed entries the rest."""
    lock = keys.event_outbox_lock(stream)
    deadline = ctx.clock() + wait
    while (owner := await acquire(ctx, lock, LOCK_TTL)) is None:
        if ctx.clock() >= deadline:
            return False
        await asyncio.sleep(random.uniform(*LOCK_POLL))
    try:
        await _move_locked(ctx, stream)
    finally:
        await ctx.store.release(lock, owner)
    return True


async def _move_locked(ctx: EventContext, stream: str) -> None:
    key, model = stream_record(stream)
    moving: list[Event] = []

    async def take_outbox(record: Outboxed | None) -> Outboxed | None:
        nonlocal moving
        if record is None or not record.outbox:
            return None
        moving = record.outbox
        for event in moving:
            await _log(ctx, stream, event)
        await _enqueue(ctx, stream, moving)
        # a lost write means a newer one, perhaps with more events: these steps repeat
        # harmlessly on the next attempt
        return record.model_copy(update={"outbox": []})

    result = await cas.update(
        ctx.store,
        key,
        model,
        take_outbox,
        contended=f"the event outbox of {stream} kept changing; the worker will retry",
    )
    if result.written:
        for event in moving:
            await ctx.store.unschedule(keys.event_outbox_due(stream, event.id))


async def _log(ctx: EventContext, stream: str, event: Event) -> None:
    key = keys.event(event.id)
    if await ctx.store.get(key) is not None:
        return  # logged by an interrupted move: keep its delivery state
    now = ctx.clock()
    late = now - event.created_at
    if late > max(ctx.settings.events_pull_delay, 1.0):
        log.warning(
            "event %s reached the log %.1f s after it happened: a pull consumer whose cursor "
            "is already past it does not see it (pushed delivery is unaffected)",
            event.id,
            late,
        )
    retention = ctx.settings.events_retention
    logged = LoggedEvent(event=event, stream=stream, expires_at=now + retention)
    # indexed first: a crash in between leaves an id that reads as missing, never an event
    # that no page lists
    await ctx.store.index_add(keys.EVENT_LOG, event.id, retention)
    await records.save_ttl(ctx.store, key, logged, retention)
    metrics.EVENT_LOG_LAG.observe(late)
    await ctx.store.index_trim(keys.EVENT_LOG, retention_floor(now, retention))


async def _enqueue(ctx: EventContext, stream: str, events: Sequence[Event]) -> None:
    if not ctx.settings.events_url:
        return  # pull only: nothing would ever drain the queue
    key = keys.event_queue(stream)

    async def append(found: EventQueue | None) -> EventQueue | None:
        queue = found if found is not None else EventQueue()
        last = queue.last_enqueued
        new = [e.id for e in events if last is None or e.id > last]
        if not new:
            return None
        return EventQueue(pending=[*queue.pending, *new], last_enqueued=new[-1])

    await cas.update(
        ctx.store,
        key,
        EventQueue,
        append,
        contended=f"the event queue of {stream} kept changing; the worker will retry",
    )
    await ctx.store.schedule(key, ctx.clock())
