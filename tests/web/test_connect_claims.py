"""One connect link, one outcome: the API-key form claims its session before it creates or
changes anything, gives it back when the user can fix the input and try again, and a link
made for an existing connection changes that connection's settings."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.config import Settings
from broker.services import connections
from broker.web.state import CONTEXT
from tests.helpers import admin, broker_client, served

Client = TestClient[Any, Any]
RETURN = "http://127.0.0.1:8080/done"
GOOD_KEY = "sk_test_GOOD_CANARY_a87ff679"
NEW_KEY = "sk_test_GOOD_CANARY_rotated_e4da3b7f"
BAD_KEY = "sk_test_WRONG_CANARY_c9f0f895"
WEBHOOK = "whsec_CLAIM_CANARY_45c48cce"
GUARD = 30  # seconds: a broken build fails here instead of hanging the suite


class GatedRuntime:
    """The platform runtime's testConnection route: accepts the GOOD keys, and holds every
    call until `opened` so a test can line concurrent submissions up behind the first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.arrived = [asyncio.Event(), asyncio.Event()]
        self.opened = asyncio.Event()
        self.opened.set()
        self.app = web.Application()
        self.app.router.add_post(
            "/api/v1/extensions/{tenant}/{connector}/routes/setup/test_connection", self.handle
        )

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        self.arrived[min(len(self.calls), 2) - 1].set()
        await self.opened.wait()
        if str(body.get("api_key", "")).startswith("sk_test_GOOD"):
            return web.json_response({"ok": True})
        return web.json_response({"message": "Invalid API key"}, status=400)


@pytest.fixture
async def runtime() -> AsyncIterator[tuple[GatedRuntime, str]]:
    fake = GatedRuntime()
    async with served(fake.app) as url:
        yield fake, url


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings],
    runtime: tuple[GatedRuntime, str],
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Client]:
    caplog.set_level(logging.DEBUG)
    async with broker_client(make_settings(runtime_url=runtime[1])) as client:
        yield client
    for canary in (GOOD_KEY, NEW_KEY, BAD_KEY, WEBHOOK):
        assert canary not in caplog.text


async def new_link(client: Client, **extra: Any) -> str:
    resp = await client.post(
        "/v1/connect-sessions",
        headers=admin(),
        json={"tenant_id": "tenant-c", "connector": "stripe", "return_url": RETURN, **extra},
    )
    assert resp.status == 201, await resp.text()
    return "/connect/" + str((await resp.json())["connect_url"]).rsplit("/", 1)[1]


async def tenant_connections(client: Client) -> list[str]:
    listed = await client.get("/v1/connections?tenant_id=tenant-c", headers=admin())
    return [c["id"] for c in (await listed.json())["connections"]]


async def test_concurrent_submissions_make_one_connection(
    api: Client, runtime: tuple[GatedRuntime, str]
) -> None:
    fake, _ = runtime
    path = await new_link(api)
    fake.opened.clear()

    async def submit() -> tuple[int, str]:
        resp = await api.post(path, data={"api_key": GOOD_KEY}, allow_redirects=False)
        return resp.status, await resp.text()

    async with asyncio.timeout(GUARD):
        posts = [asyncio.create_task(submit()) for _ in range(3)]
        await fake.arrived[0].wait()  # one submission is being tested
        # the other two are either answered already or at the runtime too (the bug)
        others_done = asyncio.create_task(asyncio.wait(posts, return_when="FIRST_COMPLETED"))
        second_test = asyncio.create_task(fake.arrived[1].wait())
        await asyncio.wait([others_done, second_test], return_when="FIRST_COMPLETED")
        fake.opened.set()
        results = await asyncio.gather(*posts)
        others_done.cancel()
        second_test.cancel()
    statuses = sorted(status for status, _ in results)
    assert statuses == [303, 409, 409], results
    assert all("being used" in text for status, text in results if status == 409)
    assert len(fake.calls) == 1
    assert len(await tenant_connections(api)) == 1


async def test_a_rejected_key_leaves_the_link_usable(
    api: Client, runtime: tuple[GatedRuntime, str]
) -> None:
    path = await new_link(api)
    rejected = await api.post(path, data={"api_key": BAD_KEY})
    assert rejected.status == 400
    assert "Invalid API key" in await rejected.text()
    done = await api.post(path, data={"api_key": GOOD_KEY}, allow_redirects=False)
    assert done.status == 303
    assert (await api.post(path, data={"api_key": GOOD_KEY})).status == 404  # used up
    assert len(await tenant_connections(api)) == 1


async def test_a_link_for_a_connection_changes_its_settings(
    api: Client, runtime: tuple[GatedRuntime, str]
) -> None:
    fake, _ = runtime
    created = await api.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "tenant-c",
            "connector": "stripe",
            "settings": {"api_key": GOOD_KEY, "webhook_secret": WEBHOOK},
        },
    )
    assert created.status == 201
    connection_id = (await created.json())["id"]
    path = await new_link(api, connection_id=connection_id)
    page = await api.get(path)
    assert page.status == 200
    assert "left empty keep" in await page.text()

    rejected = await api.post(path, data={"api_key": BAD_KEY, "webhook_secret": ""})
    assert rejected.status == 400  # tested first: the connection keeps its settings
    done = await api.post(
        path, data={"api_key": NEW_KEY, "webhook_secret": ""}, allow_redirects=False
    )
    assert done.status == 303, await done.text()
    assert done.headers["Location"] == f"{RETURN}?status=connected&connection_id={connection_id}"

    assert await tenant_connections(api) == [connection_id]
    conn, _ = await connections.get(api.app[CONTEXT], connection_id)
    assert conn.settings_version == 2
    assert conn.secrets == {"api_key": NEW_KEY, "webhook_secret": WEBHOOK}
    assert fake.calls[-1] == {"api_key": NEW_KEY, "webhook_secret": WEBHOOK}
    versions = await api.get(f"/v1/connections/{connection_id}/settings/versions", headers=admin())
    assert [v["version"] for v in (await versions.json())["versions"]] == [2, 1]
    assert (await api.get(path)).status == 404  # the link died with the change


async def test_a_link_for_a_connection_needs_a_change(
    api: Client, runtime: tuple[GatedRuntime, str]
) -> None:
    created = await api.post(
        "/v1/connections",
        headers=admin(),
        json={"tenant_id": "tenant-c", "connector": "stripe", "settings": {"api_key": GOOD_KEY}},
    )
    connection_id = (await created.json())["id"]
    path = await new_link(api, connection_id=connection_id)
    empty = await api.post(path, data={"api_key": "", "webhook_secret": ""})
    assert empty.status == 400
    assert re.search(r'id="problems"><p>[^<]*nothing to change', await empty.text())
    conn, _ = await connections.get(api.app[CONTEXT], connection_id)
    assert conn.settings_version == 1
    assert (await api.get(path)).status == 200  # still usable
