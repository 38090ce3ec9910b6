"""Outbound events: what happened to a connection (or to the keys), for the platform.

Emitting: a code path that changes a connection adds the event to the record it is about to
write (`add`) and writes it with `save`, so the event exists exactly when the change does;
`save` then moves it into the global log at once (`outbox`). Events of one stream (a
connection, or `keys.GLOBAL_EVENTS`) get strictly growing ids, so their id order is their
order, in the log and on the wire. Payloads carry names, statuses and error codes, never a
secret value or token.

Reading: `list_after` pages the log in id order for pull consumers (GET /v1/events).

Everything here needs an `EventContext` only (store, settings, clock): the command line
emits with `announce`, without the serving broker's `Context`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import broker.services.events.outbox as event_outbox
from broker.config import Settings
from broker.errors import BrokerError, Conflict, NotFound
from broker.services import cas, record_ids, records
from broker.services.events.ids import id_time_ms, is_event_id, new_event_id, retention_floor
from broker.services.events.outbox import EventContext
from broker.services.records import Connection, Event, GlobalEvents, LoggedEvent, Outboxed
from broker.store import keys
from broker.store.base import Fence
from broker.store.sealed import SealedStore

log = logging.getLogger("broker.events")

EVENT_TYPES = frozenset(
    {
        "connection.created",
        "connection.reconnected",
        "connection.needs_reauth",
        "connection.refresh_failed",
        "connection.recovered",
        "connection.deleted",
        "connection.settings_rotated",
        "keys.rewrap_completed",
    }
)
FLUSH_WAIT = 1.0
"""Seconds an emitter waits for a busy outbox lock before leaving its events to the worker."""


def iso_ms(ts: float) -> str:
    """ISO-8601 UTC with milliseconds: 2026-11-24T07:00:00.123Z."""
    ms = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def payload(event: Event) -> dict[str, Any]:
    """The event as delivered and listed."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": iso_ms(event.created_at),
        "tenant_id": event.tenant_id,
        "connection_id": event.connection_id,
        "connector": event.connector,
        "data": event.data,
    }


def _event(
    ctx: EventContext, stream: Outboxed, type: str, data: Mapping[str, Any], conn: Connection | None
) -> Event:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    now = ctx.clock()
    return Event(
        id=new_event_id(now, stream.last_event_id),
        type=type,
        created_at=now,
        tenant_id=conn.tenant_id if conn else None,
        connection_id=conn.id if conn else None,
        connector=conn.connector if conn else None,
        data=dict(data),
    )


def add(ctx: EventContext, conn: Connection, type: str, data: Mapping[str, Any]) -> Connection:
    """`conn` with the event in its outbox, for the caller's own CAS write (then `save`)."""
    if conn.events_closed:
        return conn  # being deleted: `connection.deleted` was the last word
    event = _event(ctx, conn, type, data, conn)
    return conn.model_copy(update={"outbox": [*conn.outbox, event], "last_event_id": event.id})


async def save(
    ctx: EventContext, conn: Connection, expect_version: int | None, fence: Fence | None = None
) -> int:
    """`records.save` of a connection, moving the events in its outbox into the log after
    the write. Raises `VersionConflict` or `LockLost` like `records.save` (nothing written,
    no event)."""
    key = keys.connection(conn.id)
    if not conn.outbox:
        return await records.save(ctx.store, key, conn, expect_version, fence)
    await event_outbox.arm(ctx, conn.id, conn.outbox)
    version = await records.save(ctx.store, key, conn, expect_version, fence)
    await _flush(ctx, conn.id)
    return version


async def update_connection(
    ctx: EventContext,
    connection_id: str,
    change: Callable[[Connection], Connection | None],
    *,
    contended: str,
    fence: Fence | None = None,
) -> tuple[Connection, bool]:
    """`cas.update` of a connection record whose change may add events (`add`): they are
    armed before every attempt and moved into the log after the one that lands, as `save`
    does. `change` answers None to write nothing, and may raise to abort. Returns the record
    as written, or as read with False when nothing was; `NotFound` without a record."""

    async def apply(conn: Connection | None) -> Connection | None:
        if conn is None:
            raise NotFound(f"no connection {connection_id!r}")
        updated = change(conn)
        if updated is not None and updated.outbox:
            await event_outbox.arm(ctx, connection_id, updated.outbox)
        return updated

    if not record_ids.is_connection_id(connection_id):
        raise NotFound(f"no connection {connection_id!r}")
    key = keys.connection(connection_id)
    result = await cas.update(ctx.store, key, Connection, apply, contended=contended, fence=fence)
    assert result.record is not None  # `apply` raised otherwise
    if result.written and result.record.outbox:
        await _flush(ctx, connection_id)
    return result.record, result.written


async def _flush(ctx: EventContext, stream: str) -> None:
    try:
        await event_outbox.move(ctx, stream, wait=FLUSH_WAIT)
    except BrokerError as exc:
        # the change is made and its event safe in the outbox: the worker moves it later
        log.warning("moving the outbox of %s failed (%s): left to the worker", stream, exc.code)


async def emit_global(ctx: EventContext, type: str, data: Mapping[str, Any]) -> Event:
    """Emit an event that belongs to no connection (`keys.rewrap_completed`): durable once
    this returns, delivered in order with the other global events."""

    async def append(found: GlobalEvents | None) -> GlobalEvents:
        stream = found if found is not None else GlobalEvents()
        event = _event(ctx, stream, type, data, None)
        await event_outbox.arm(ctx, keys.GLOBAL_EVENTS, [event])
        return stream.model_copy(
            update={"outbox": [*stream.outbox, event], "last_event_id": event.id}
        )

    result = await cas.update(
        ctx.store,
        keys.global_events(),
        GlobalEvents,
        append,
        contended="the global event stream is too contended; retry",
    )
    await _flush(ctx, keys.GLOBAL_EVENTS)
    assert result.record is not None
    return result.record.outbox[-1]


@dataclass(frozen=True)
class Emitter:
    """An `EventContext` from a store and the settings alone: no catalog, no HTTP client, no
    audit log, none of which emitting needs (`announce`)."""

    store: SealedStore
    settings: Settings
    clock: Callable[[], float] = time.time


async def announce(
    store: SealedStore, settings: Settings, type: str, data: Mapping[str, Any]
) -> Event:
    """`emit_global` for code that has a store and no running broker: the command line
    (`broker keys rewrap` announces `keys.rewrap_completed`). The event lands in the log like
    any other; the serving brokers' event workers deliver it."""
    return await emit_global(Emitter(store, settings), type, data)


async def delete_connection(ctx: EventContext, connection_id: str, data: Mapping[str, Any]) -> None:
    """Delete a connection record once `connection.deleted`, and every event before it, is
    in the log: the outbox goes with the record. A crash in between leaves a `revoked`
    connection whose deletion is announced already (at-least-once); deleting it again
    finishes the job without a second event."""
    key = keys.connection(connection_id)
    contended = f"{connection_id} kept changing while being deleted; retry"

    async def close(conn: Connection | None) -> Connection | None:
        if conn is None or conn.events_closed:
            return None
        closed = add(ctx, conn, "connection.deleted", data).model_copy(
            update={"events_closed": True, "status": "revoked", "updated_at": ctx.clock()}
        )
        await event_outbox.arm(ctx, conn.id, closed.outbox)
        return closed

    async def drop(conn: Connection | None) -> cas.Delete | None:
        if conn is None:
            return None
        if conn.outbox and not await event_outbox.move(ctx, conn.id, wait=event_outbox.LOCK_TTL):
            raise Conflict(f"the event outbox of {conn.id} is busy; retry the delete")
        # after a move the version read is stale: the delete loses, and the next attempt
        # reads the record with its outbox empty; a late write (a refresh finishing) the same
        return cas.DELETE

    await cas.update(ctx.store, key, Connection, close, contended=contended)
    await cas.update(ctx.store, key, Connection, drop, contended=contended)


async def list_after(ctx: EventContext, after: str | None, limit: int) -> list[Event]:
    """Up to `limit` logged events with ids above `after`, in id order, read through the log's
    ordered index (`keys.EVENT_LOG`): a page costs its own size, however long the log.
    Events younger than `BROKER_EVENTS_PULL_DELAY` are held back: one still being moved into
    the log (ids are given at creation) must not land behind a cursor that has already
    passed it."""
    now = ctx.clock()
    horizon = int((now - ctx.settings.events_pull_delay) * 1000)
    found: list[Event] = []
    # ids past the retention are gone, whether or not a writer has trimmed them yet
    floor = retention_floor(now, ctx.settings.events_retention)
    cursor = floor if after is None or after < floor else after
    while len(found) < limit:
        ids = await ctx.store.index_range(keys.EVENT_LOG, after=cursor, limit=limit)
        ready: list[str] = []
        young = False
        for event_id in ids:
            if not is_event_id(event_id):
                continue  # not an id we wrote (the store is untrusted): pass over it
            if id_time_ms(event_id) > horizon:
                young = True  # it and all after it: ids sort by time
                break
            ready.append(event_id)
        loaded = await asyncio.gather(
            *(records.load(ctx.store, keys.event(i), LoggedEvent) for i in ready)
        )
        for event_id, record in zip(ready, loaded, strict=True):
            if record is None:
                continue  # expired, or its move is still under way (the pull delay covers it)
            logged = record[0]
            if logged.expires_at <= now:
                # a rewrap rewrote it without its TTL: past the retention all the same
                await ctx.store.delete(keys.event(event_id))
                continue
            found.append(logged.event)
            if len(found) == limit:
                break
        if len(ids) < limit or young:
            break  # the index is exhausted, or the rest is younger than the horizon
        cursor = ids[-1]
    return found
