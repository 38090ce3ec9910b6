"""The event worker's figures: events left in an outbox (an emitter that died after its
write) and push queues due, as its poll finds them; the lag from an event happening to its
landing in the log and to its receiver's 2xx. Against a real receiver on loopback, with the
worker's clock 20 s ahead so the left-behind events are due."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import broker.services.events.outbox as event_outbox
from broker.config import Settings
from broker.services import events, records
from broker.services.context import Context
from broker.services.events import EventWorker
from broker.store import keys
from broker.web.state import CONTEXT
from tests.helpers import admin, broker_client, metric, served

SECRET = "whsec_" + base64.b64encode(b"metrics events signing key, 32 b").decode()
AHEAD = 20.0


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[bytes], str]]:
    received: list[bytes] = []

    async def hooks(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", hooks)
    async with served(app) as base:
        yield received, f"{base}/hooks"


@pytest.fixture
async def client(
    receiver: tuple[list[bytes], str], make_settings: Callable[..., Settings]
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = make_settings(
        refresher=False, events_worker=False, events_url=receiver[1], events_secret=SECRET
    )
    async with broker_client(settings) as test_client:
        yield test_client


async def leave_in_outbox(ctx: Context, connection_id: str, count: int) -> None:
    """What an emitter that died right after its write leaves: events armed and written into
    the record's outbox, never moved."""
    conn, version = await records.load_connection(ctx.store, connection_id)
    for n in range(count):
        conn = events.add(ctx, conn, "connection.settings_rotated", {"version": n})
    await event_outbox.arm(ctx, connection_id, conn.outbox)
    await records.save(ctx.store, keys.connection(connection_id), conn, version)


def lag(kind: str, sample: str) -> float:
    return metric(f"broker_event_{kind}_lag_seconds_{sample}")


async def test_the_worker_shows_its_backlog_and_the_lag_of_events(
    client: TestClient[Any, Any], receiver: tuple[list[bytes], str]
) -> None:
    received = receiver[0]
    body = {"tenant_id": "t-events", "connector": "stripe", "settings": {"api_key": "sk_x"}}
    created = await client.post("/v1/connections", headers=admin(), json=body)
    assert created.status == 201
    ctx: Context = client.app[CONTEXT]
    await leave_in_outbox(ctx, (await created.json())["id"], 2)
    before = {(kind, s): lag(kind, s) for kind in ("log", "delivery") for s in ("count", "sum")}

    worker = EventWorker(dataclasses.replace(ctx, clock=lambda: time.time() + AHEAD))
    await worker.run_once()
    # the two left behind, and the queue `connection.created` was put in at once
    assert metric("broker_event_outbox_depth") == 2
    assert metric("broker_event_queues_due") == 1
    for _ in range(10):
        if len(received) == 3:
            break
        await worker.run_once()
    assert len(received) == 3
    await worker.run_once()
    assert (metric("broker_event_outbox_depth"), metric("broker_event_queues_due")) == (0, 0)

    assert lag("log", "count") == before[("log", "count")] + 2
    assert lag("log", "sum") >= before[("log", "sum")] + 2 * AHEAD  # moved by the worker
    assert lag("delivery", "count") == before[("delivery", "count")] + 3
    assert lag("delivery", "sum") >= before[("delivery", "sum")] + 3 * AHEAD
