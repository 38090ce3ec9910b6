"""Rate limits: per client address on the Connect pages, per runtime token on /v1/runtime/*,
429 with Retry-After, shared by replicas on one Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, make_mocked_request
from pydantic import IPvAnyNetwork, TypeAdapter

from broker.config import Settings
from broker.web.rate_limits import client_address
from tests.helpers import admin, broker_client
from tests.store.redis_servers import RedisServer, redis_server_fixture
from tests.web.test_runtime_api import bearer, connect, mint

Client = TestClient[Any, Any]
DEAD_LINK = "/connect/no-such-token"


def limited(resp: Any) -> int:
    assert resp.status == 429
    seconds = int(resp.headers["Retry-After"])  # whole seconds
    assert seconds >= 1
    return seconds


async def test_the_connect_pages_are_limited_per_address(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(connect_rate_limit=0.01, connect_rate_burst=3)
    async with broker_client(settings) as client:
        for _ in range(3):
            assert (await client.get(DEAD_LINK)).status == 404
        page = await client.get(DEAD_LINK)
        assert limited(page) >= 99  # one request per 100 s
        assert page.content_type == "text/html"  # a browser's page, with its code
        assert 'data-error="rate_limited"' in await page.text()
        callback = await client.get("/oauth/callback/github?state=x&code=y")
        limited(callback)
        # the API is not a Connect page
        assert (await client.get("/healthz")).status == 200


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    make_settings: Callable[..., Settings],
) -> None:
    def forwarded(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"{address}, 127.0.0.1"}

    common = {"connect_rate_limit": 0.01, "connect_rate_burst": 1}
    trusting = make_settings(trusted_proxies="127.0.0.1/32", **common)
    async with broker_client(trusting) as client:
        assert (await client.get(DEAD_LINK, headers=forwarded("203.0.113.7"))).status == 404
        limited(await client.get(DEAD_LINK, headers=forwarded("203.0.113.7")))
        assert (await client.get(DEAD_LINK, headers=forwarded("203.0.113.8"))).status == 404
    async with broker_client(make_settings(**common)) as client:
        # not trusted: the header is the client's own say, and the peer is the client
        assert (await client.get(DEAD_LINK, headers=forwarded("203.0.113.9"))).status == 404
        limited(await client.get(DEAD_LINK, headers=forwarded("203.0.113.10")))


NETWORKS = TypeAdapter(list[IPvAnyNetwork])


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "client"),
    [
        ("198.51.100.1", "203.0.113.5", [], "198.51.100.1"),
        ("10.0.0.2", "203.0.113.5", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.0.0.2", "1.1.1.1, 203.0.113.5, 10.0.0.9", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.0.0.2", "203.0.113.5, not-an-ip", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", "10.0.0.7", ["10.0.0.0/8"], "10.0.0.7"),
        ("10.0.0.2", None, ["10.0.0.0/8"], "10.0.0.2"),
        ("::1", "2001:db8::1", ["::1/128"], "2001:db8::1"),
    ],
)
def test_client_address(peer: str, header: str | None, trusted: list[str], client: str) -> None:
    headers = {"X-Forwarded-For": header} if header else {}
    transport = _Transport(peer)
    request = make_mocked_request("GET", "/connect/x", headers=headers, transport=transport)
    assert client_address(request, NETWORKS.validate_python(trusted)) == client


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default


async def test_runtime_reads_are_limited_per_token(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(runtime_rate_limit=0.01, runtime_rate_burst=2)
    async with broker_client(settings) as client:
        cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_1"})
        first, second = await mint(client, cid), await mint(client, cid)
        path = "/v1/runtime/secrets/api_key"
        for _ in range(2):
            assert (await client.get(path, headers=bearer(first))).status == 200
        resp = await client.get(path, headers=bearer(first))
        limited(resp)
        assert (await resp.json())["error"] == "rate_limited"
        assert (await client.get(path, headers=bearer(second))).status == 200
        # the admin API has no such limit
        assert (await client.get(f"/v1/connections/{cid}", headers=admin())).status == 200


async def test_runtime_reads_are_unlimited_by_default(client: Client) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_1"})
    token = await mint(client, cid)
    for _ in range(150):
        assert (
            await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
        ).status == 200


def test_the_connect_limit_is_on_by_default() -> None:
    defaults = Settings.model_fields
    assert defaults["connect_rate_limit"].default > 0
    assert defaults["runtime_rate_limit"].default == 0


redis = redis_server_fixture()


async def test_replicas_on_one_redis_share_the_limit(
    make_settings: Callable[..., Settings], redis: RedisServer, tmp_path: Path
) -> None:
    settings = make_settings(store=redis.url, connect_rate_limit=0.01, connect_rate_burst=4)
    async with broker_client(settings) as a, broker_client(settings) as b:
        for replica in (a, b, a, b):
            assert (await replica.get(DEAD_LINK)).status == 404
        limited(await a.get(DEAD_LINK))
        limited(await b.get(DEAD_LINK))
