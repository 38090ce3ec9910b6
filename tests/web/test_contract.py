"""Contract-wide properties of the HTTP layer: every admin route is guarded, a down store is a
503 with the JSON error shape (never a hang), and readiness follows the store."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.web.app import create_app
from broker.web.request_guard import is_admin_path
from tests.helpers import admin
from tests.store.redis_servers import RedisServer, free_port

Client = TestClient[Any, Any]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_admin_route_needs_the_admin_token(client: Client) -> None:
    checked = 0
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if not is_admin_path(path) or route.method == "HEAD":
            continue
        for headers in ({}, admin("not-the-admin-token-000")):
            resp = await client.request(route.method, concrete(path), headers=headers, json={})
            assert resp.status == 401, (route.method, path)
            assert (await resp.json())["error"] == "unauthorized"
        checked += 1
    assert checked >= 8


async def test_runtime_routes_do_not_take_the_admin_token(client: Client) -> None:
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/v1/runtime/"):
            resp = await client.request(route.method, concrete(path), headers=admin())
            assert resp.status == 401, path


async def test_store_down_is_503_json(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis", free_port())
    redis.start()
    app = create_app(make_settings(store=redis.url))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/readyz")).status == 200
        redis.kill()
        for method, path in (
            ("GET", "/readyz"),
            ("GET", "/v1/connections?tenant_id=t"),
            ("GET", "/v1/oauth-apps/some_app"),
        ):
            started = time.monotonic()
            resp = await client.request(method, path, headers=admin())
            assert time.monotonic() - started < 5
            assert resp.status == 503, path
            body = await resp.json()
            assert body["error"] == "store_unavailable"
        redis.start()
        deadline = time.monotonic() + 10
        while (await client.get("/readyz")).status != 200:
            assert time.monotonic() < deadline, "the store did not come back"
        listed = await client.get("/v1/connections?tenant_id=t", headers=admin())
        assert listed.status == 200
    redis.stop()
