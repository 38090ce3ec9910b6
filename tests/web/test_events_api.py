"""The event log over real HTTP on the real (SQLite) store: what connection changes emit, in
which order, GET /v1/events paging, and the outbox a crashed emitter leaves behind."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.services import events, records
from broker.services.events import EventWorker
from broker.services.events import outbox as event_outbox
from broker.services.records import Connection
from broker.store import keys
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.helpers import admin

Client = TestClient[Any, Any]
CANARY = "sk_test_CANARY_events_5d41402a"
ROTATED_CANARY = "sk_test_CANARY_events_rotated_7d793037"
WEBHOOK_CANARY = "whsec_CANARY_events_9e107d9d"


async def start(settings: Settings) -> Client:
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def api(make_settings: Callable[..., Settings]) -> AsyncIterator[Client]:
    # no BROKER_RUNTIME_URL: connections are not tested against a runtime
    client = await start(make_settings(events_pull_delay=0, events_worker=False))
    yield client
    await client.close()


async def create(api: Client, tenant: str = "tenant-a") -> str:
    resp = await api.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": tenant,
            "connector": "stripe",
            "settings": {"api_key": CANARY, "webhook_secret": WEBHOOK_CANARY},
        },
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def listed(api: Client, **params: str) -> dict[str, Any]:
    resp = await api.get("/v1/events", params=params, headers=admin())
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_connections_life_in_events_without_a_secret(api: Client) -> None:
    conn = await create(api)
    url = f"/v1/connections/{conn}/settings"
    resp = await api.patch(url, json={"settings": {"api_key": ROTATED_CANARY}}, headers=admin())
    assert resp.status == 200
    resp = await api.post(url + "/rollback", json={"version": 1}, headers=admin())
    assert resp.status == 200
    assert (await api.delete(f"/v1/connections/{conn}", headers=admin())).status == 200
    assert (await api.get(f"/v1/connections/{conn}", headers=admin())).status == 404

    body = await listed(api)
    assert CANARY not in str(body) and ROTATED_CANARY not in str(body)
    assert WEBHOOK_CANARY not in str(body)
    found = body["events"]
    assert [e["type"] for e in found] == [
        "connection.created",
        "connection.settings_rotated",
        "connection.settings_rotated",
        "connection.deleted",
    ]
    assert body["next"] == found[-1]["id"]
    ids = [e["id"] for e in found]
    assert ids == sorted(ids) and len(set(ids)) == 4
    for event in found:
        assert set(event) == {
            "id",
            "type",
            "created_at",
            "tenant_id",
            "connection_id",
            "connector",
            "data",
        }
        assert (event["tenant_id"], event["connection_id"], event["connector"]) == (
            "tenant-a",
            conn,
            "stripe",
        )
        assert time.strptime(event["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    created, changed, rolled_back, deleted = (e["data"] for e in found)
    assert created == {
        "status": "active",
        "settings": ["api_key", "webhook_secret"],
        "settings_version": 1,
    }
    assert changed == {
        "action": "change",
        "names": ["api_key"],
        "version": 2,
        "previous_version": 1,
    }
    assert rolled_back == {
        "action": "rollback",
        "names": ["api_key"],
        "version": 3,
        "previous_version": 2,
    }
    assert deleted == {"revocation": "not_supported", "forced": False}
    # nothing left behind: no outbox entries waiting in the due index
    ctx = api.app[CONTEXT]
    assert await ctx.store.due(time.time() + 3600, 100) == []


async def test_paging_with_a_cursor(api: Client) -> None:
    made = [await create(api, f"tenant-{i}") for i in range(5)]
    first = await listed(api, limit="2")
    assert [e["connection_id"] for e in first["events"]] == made[:2]
    second = await listed(api, after=first["next"], limit="2")
    assert [e["connection_id"] for e in second["events"]] == made[2:4]
    rest = await listed(api, after=second["next"])
    assert [e["connection_id"] for e in rest["events"]] == made[4:]
    empty = await listed(api, after=rest["next"])
    assert empty == {"events": [], "next": rest["next"]}  # the cursor stays put
    assert (await listed(api, limit="1000"))["events"] == [
        *first["events"],
        *second["events"],
        *rest["events"],
    ]
    for params in ({"after": "nope"}, {"limit": "0"}, {"limit": "x"}, {"limit": "1001"}):
        resp = await api.get("/v1/events", params=params, headers=admin())
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"
    assert (await api.get("/v1/events")).status == 401


async def test_a_page_reads_only_its_own_events(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = api.app[CONTEXT]
    emitted = [
        (await events.emit_global(ctx, "keys.rewrap_completed", {"n": n})).id for n in range(120)
    ]
    reads: list[str] = []
    get = ctx.store.get

    async def counting_get(key: str) -> tuple[bytes, int] | None:
        reads.append(key)
        found: tuple[bytes, int] | None = await get(key)
        return found

    monkeypatch.setattr(ctx.store, "get", counting_get)
    page = await listed(api, after=emitted[99], limit="5")
    assert [e["id"] for e in page["events"]] == emitted[100:105]
    assert reads == [keys.event(i) for i in emitted[100:105]]  # not the other 115
    # an id whose record is gone (expired) is passed over, the page still filled
    await ctx.store.delete(keys.event(emitted[101]))
    page = await listed(api, after=emitted[99], limit="5")
    assert [e["id"] for e in page["events"]] == [emitted[100], *emitted[102:106]]
    # a member the broker never wrote (the store is untrusted) is passed over, not served
    await ctx.store.index_add(keys.EVENT_LOG, emitted[101] + "-junk", 60)
    await ctx.store.index_add(keys.EVENT_LOG, "evt_not-an-id", 60)
    page = await listed(api, after=emitted[99], limit="5")
    assert [e["id"] for e in page["events"]] == [emitted[100], *emitted[102:106]]
    # past the retention, ids a writer has not trimmed yet are not even looked at
    monkeypatch.setattr(ctx, "clock", lambda: time.time() + ctx.settings.events_retention + 5)
    reads.clear()
    assert (await listed(api))["events"] == []
    assert reads == []


async def test_fresh_events_are_held_back_for_the_pull_delay(
    make_settings: Callable[..., Settings],
) -> None:
    client = await start(make_settings(events_pull_delay=0.5, events_worker=False))
    try:
        conn = await create(client)
        assert await listed(client) == {"events": [], "next": None}
        await asyncio.sleep(0.6)
        assert [e["connection_id"] for e in (await listed(client))["events"]] == [conn]
    finally:
        await client.close()


async def test_an_event_left_in_an_outbox_is_moved_by_the_worker(api: Client) -> None:
    ctx = api.app[CONTEXT]
    conn_id = await create(api)
    key = keys.connection(conn_id)
    found = await records.load(ctx.store, key, Connection)
    assert found is not None
    conn, version = found
    assert conn.outbox == [] and conn.last_event_id is not None
    # an emitter that dies right after its write: armed, written, never moved
    updated = events.add(ctx, conn, "connection.settings_rotated", {"names": ["api_key"]})
    await event_outbox.arm(ctx, conn_id, updated.outbox)
    await records.save(ctx.store, key, updated, version)
    assert len((await listed(api))["events"]) == 1
    worker = EventWorker(ctx)
    assert await worker.run_once() == 0  # not before the emitter had its chance
    later = EventWorker(dataclasses.replace(ctx, clock=lambda: time.time() + 11))
    assert await later.run_once() == 1
    types = [e["type"] for e in (await listed(api))["events"]]
    assert types == ["connection.created", "connection.settings_rotated"]
    after = await records.load(ctx.store, key, Connection)
    assert after is not None and after[0].outbox == []
    assert await ctx.store.due(time.time() + 3600, 100) == []


async def test_global_events(api: Client) -> None:
    ctx = api.app[CONTEXT]
    event = await events.emit_global(
        ctx, "keys.rewrap_completed", {"primary": "k2", "rewrapped": 3}
    )
    (listed_event,) = (await listed(api))["events"]
    assert listed_event == events.payload(event)
    assert listed_event["connection_id"] is None and listed_event["tenant_id"] is None
    assert listed_event["data"] == {"primary": "k2", "rewrapped": 3}
    second = await events.emit_global(ctx, "keys.rewrap_completed", {})
    assert second.id > event.id
    with pytest.raises(ValueError, match="unknown event type"):
        await events.emit_global(ctx, "keys.made_up", {})


async def test_a_delete_interrupted_after_its_event_finishes_without_a_second(
    api: Client,
) -> None:
    ctx = api.app[CONTEXT]
    conn_id = await create(api)
    key = keys.connection(conn_id)
    found = await records.load(ctx.store, key, Connection)
    assert found is not None
    conn, version = found
    # what `delete_connection` writes first, then a crash: announced, still there
    closed = events.add(ctx, conn, "connection.deleted", {"revocation": "not_supported"})
    closed = closed.model_copy(update={"events_closed": True, "status": "revoked"})
    await events.save(ctx, closed, version)
    view = await (await api.get(f"/v1/connections/{conn_id}", headers=admin())).json()
    assert view["status"] == "revoked"
    # nothing is announced after the deletion
    resp = await api.patch(
        f"/v1/connections/{conn_id}/settings",
        json={"settings": {"api_key": ROTATED_CANARY}},
        headers=admin(),
    )
    assert resp.status == 200
    assert (await api.delete(f"/v1/connections/{conn_id}", headers=admin())).status == 200
    assert (await api.get(f"/v1/connections/{conn_id}", headers=admin())).status == 404
    types = [e["type"] for e in (await listed(api))["events"]]
    assert types == ["connection.created", "connection.deleted"]
