"""Pushed events against a real receiver that fails, goes away and comes back, across a
broker restart and with a second replica: every event arrives, in order per connection,
verified with the Standard Webhooks library; on SQLite and on Redis."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from broker.config import Settings
from broker.services import events
from broker.services.records import LoggedEvent
from broker.store import keys
from broker.web.access_log import AccessLogger
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.e2e.harness import free_port
from tests.helpers import admin, metric
from tests.store.redis_servers import RedisServer

SECRET = "whsec_" + base64.b64encode(b"e2e events signing key, 32 bytes").decode()
CANARY = "sk_test_CANARY_delivery_1f3870be"


class Receiver:
    """The platform's event endpoint: verifies like a real consumer, and can be told to
    fail or be stopped altogether."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.webhook = Webhook(SECRET)
        self.fail_next = 0
        self.attempts = 0
        self.rejected = 0
        self.received: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self._server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        try:
            event = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return web.Response(status=400)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500)
        assert request.headers["webhook-id"] == event["id"]
        self.received.append(event)
        self.bodies.append(body)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.close()

    def ids(self) -> set[str]:
        return {e["id"] for e in self.received}


class Broker:
    def __init__(self, settings: Settings, port: int) -> None:
        self.settings, self.port = settings, port
        self.url = f"http://127.0.0.1:{port}"
        self._server: TestServer | None = None

    async def start(self) -> web.Application:
        app = create_app(self.settings)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server(access_log_class=AccessLogger)
        return app

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.close()


async def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def create(api: aiohttp.ClientSession, tenant: str) -> str:
    resp = await api.post(
        "/v1/connections",
        headers=admin(),
        json={"tenant_id": tenant, "connector": "stripe", "settings": {"api_key": CANARY}},
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def change(api: aiohttp.ClientSession, conn: str, value: str) -> None:
    resp = await api.patch(
        f"/v1/connections/{conn}/settings",
        headers=admin(),
        json={"settings": {"webhook_secret": f"whsec_CANARY_{value}"}},
    )
    assert resp.status == 200, await resp.text()


async def delete(api: aiohttp.ClientSession, conn: str) -> None:
    assert (await api.delete(f"/v1/connections/{conn}", headers=admin())).status == 200


async def pending_attempts(app: web.Application) -> int:
    """Failed attempts recorded in the log for events not delivered yet."""
    ctx = app[CONTEXT]
    page = await ctx.store.scan(keys.EVENT_PREFIX)
    logged = [LoggedEvent.model_validate_json(e.value) for e in page.entries]
    return sum(e.delivery.attempts for e in logged if e.delivery.delivered_at is None)


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the suite's default: one SQLite file, which the restart reopens
        return
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_every_event_arrives_in_order_through_failures_an_outage_and_a_restart(
    make_settings: Callable[..., Settings], store_url: str | None
) -> None:
    receiver = Receiver(free_port())
    settings = make_settings(
        **({"store": store_url} if store_url else {}),
        events_url=f"http://127.0.0.1:{receiver.port}/hooks",
        events_secret=SECRET,
        events_retry_base=0.05,
        events_retry_max=0.4,
        events_pull_delay=0,
    )
    broker = Broker(settings, free_port())
    receiver.fail_next = 3
    delivered = metric("broker_event_deliveries_total", outcome="delivered")
    failed = metric("broker_event_deliveries_total", outcome="failed")
    await receiver.start()
    app = await broker.start()
    async with aiohttp.ClientSession(base_url=broker.url) as api:
        a, b = await create(api, "tenant-a"), await create(api, "tenant-b")
        await change(api, a, "one")
        await change(api, a, "two")
        await wait_for(lambda: len(receiver.ids()) == 4)
        assert receiver.attempts >= 7  # three 500s were retried
        assert metric("broker_event_deliveries_total", outcome="failed") >= failed + 3
        # the receiver has the 4th event a moment before the broker records its 2xx
        await wait_for(
            lambda: metric("broker_event_deliveries_total", outcome="delivered") >= delivered + 4
        )

        await receiver.stop()  # the platform is down
        await change(api, a, "three")
        await delete(api, b)
        await events.emit_global(app[CONTEXT], "keys.rewrap_completed", {"primary": "k2"})
        await asyncio.sleep(0.5)
        assert await pending_attempts(app) >= 3  # tried, failed, recorded

        await broker.stop()  # and the broker restarts meanwhile, on the same store
        app = await broker.start()
        replica = Broker(settings, free_port())  # with a second replica's worker competing
        await replica.start()
        await change(api, a, "four")
        await delete(api, a)
        await asyncio.sleep(0.3)

        await receiver.start()
        logged = (await (await api.get("/v1/events?limit=1000", headers=admin())).json())["events"]
        assert len(logged) == 9
        await wait_for(lambda: receiver.ids() >= {e["id"] for e in logged})

        # a stream's queue is forgotten once drained
        ctx = app[CONTEXT]
        for stream in (a, b, keys.GLOBAL_EVENTS):
            for _ in range(100):
                if await ctx.store.get(keys.event_queue(stream)) is None:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"the queue of {stream} is still there")
        assert await ctx.store.due(time.time() + 3600, 100) == []
        await replica.stop()
        await broker.stop()
    await receiver.stop()

    assert receiver.rejected == 0
    first_seen: dict[str, dict[str, Any]] = {}
    for event in receiver.received:
        first_seen.setdefault(event["id"], event)
    per_stream: dict[str | None, list[str]] = defaultdict(list)
    for event in first_seen.values():
        per_stream[event["connection_id"]].append(event["id"])
    expected: dict[str | None, list[str]] = defaultdict(list)
    for event in logged:
        expected[event["connection_id"]].append(event["id"])
    assert per_stream == expected  # every event, in order within its connection
    seen: set[str] = set()
    for event in receiver.received:  # repeats included: none arrives ahead of its predecessors
        ids = expected[event["connection_id"]]
        assert set(ids[: ids.index(event["id"])]) <= seen
        seen.add(event["id"])
    types = {event_id: first_seen[event_id]["type"] for event_id in first_seen}
    assert [types[i] for i in per_stream[a]] == [
        "connection.created",
        *["connection.settings_rotated"] * 4,
        "connection.deleted",
    ]
    assert [types[i] for i in per_stream[b]] == ["connection.created", "connection.deleted"]
    assert [types[i] for i in per_stream[None]] == ["keys.rewrap_completed"]
    assert [first_seen[e["id"]] for e in logged] == logged  # pushed as listed
    for body in receiver.bodies:
        assert CANARY.encode() not in body and b"whsec_CANARY" not in body
