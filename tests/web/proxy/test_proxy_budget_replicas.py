"""The rate budget holds across replicas: two brokers on one Redis, runtimes racing through
both on one connection, and the provider sees no more calls than `connection.rateLimit`
allows; the rest are the broker's own 429s with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.config import Settings
from tests.helpers import broker_client
from tests.store.redis_servers import RedisServer, free_port
from tests.web.proxy.conftest import runtime, runtime_token_for
from tests.web.proxy.fake_api import FakeApi


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_two_replicas_share_one_budget(
    proxy_settings: Callable[..., Settings], redis: RedisServer, fake: tuple[FakeApi, int]
) -> None:
    api, port = fake
    settings = proxy_settings(store=redis.url)
    async with broker_client(settings) as one, broker_client(settings) as two:
        token = await runtime_token_for(one, "px-budget")  # 3 requests an hour
        url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo"
        answers = await asyncio.gather(
            *(replica.get(url, headers=runtime(token)) for replica in [one, two] * 6)
        )
        statuses = sorted(r.status for r in answers)
        # one bucket per replica would let 3 through each
        assert statuses == [200] * 3 + [429] * 9
        assert len(api.received) == 3
        for refused in (r for r in answers if r.status == 429):
            assert (await refused.json())["error"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1
