"""Redis with an append-only file (`appendfsync always`) SIGKILLed in the middle of a refresh,
at known points: a token endpoint in front of the real oidc-provider (which rotates refresh
tokens and revokes the grant when a spent one comes back) holds the provider's answer while
Redis is killed. Back before the answer is written, Redis still has the refresh lock and the
record, and the rotated tokens are stored; what it acknowledged survives a SIGKILL. Still
down when the answer comes, the rotation is lost (a journal is issue 17): the test pins down
what happens then, and that no token of the revoked grant is served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import free_port, serve, works_at_the_provider
from tests.e2e.outage import (
    BOUND,
    HANG,
    Broker,
    HoldingTokenEndpoint,
    aof_redis,
    is_unavailable,
    peer_config,
    running_broker,
)
from tests.peers.oidc import OidcPeer, oidc_peer_fixture
from tests.store.redis_servers import RedisServer

BROKER_PORT, PROXY_PORT = free_port(), free_port()

oidc = oidc_peer_fixture(lambda: peer_config(f"http://127.0.0.1:{BROKER_PORT}"), scope="module")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with aof_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def proxy(oidc: OidcPeer) -> AsyncIterator[HoldingTokenEndpoint]:
    endpoint = HoldingTokenEndpoint(oidc.token_endpoint)
    async with serve(endpoint.app, PROXY_PORT):
        yield endpoint
        endpoint.release.set()


@pytest.fixture
async def broker(
    tmp_path: Path, redis: RedisServer, oidc: OidcPeer, proxy: HoldingTokenEndpoint
) -> AsyncIterator[Broker]:
    token_url = f"http://127.0.0.1:{PROXY_PORT}/token"
    async with running_broker(BROKER_PORT, tmp_path, redis, oidc, token_url) as b:
        yield b


async def held_refresh(
    broker: Broker, runtime: str, proxy: HoldingTokenEndpoint
) -> asyncio.Future[tuple[int, Any]]:
    """A forced refresh, once the provider has rotated the refresh token and its answer is
    held on the way back to the broker."""
    proxy.holding = True
    forced = asyncio.ensure_future(broker.force_refresh(runtime))
    await asyncio.wait_for(proxy.answered.wait(), HANG)
    return forced


async def restart(redis: RedisServer) -> None:
    """SIGKILL, then start again on the same port from the append-only file."""
    redis.kill()
    await asyncio.to_thread(redis.start)


async def test_killed_and_back_before_the_answer_the_rotated_token_is_kept(
    broker: Broker, redis: RedisServer, oidc: OidcPeer, proxy: HoldingTokenEndpoint
) -> None:
    connection_id, runtime = await broker.connect_oauth()
    old = (await broker.access_token(runtime))[1]["access_token"]
    oidc.reset_stats()
    forced = await held_refresh(broker, runtime, proxy)
    # the lock and the record come back with Redis: the fenced write of the answer lands
    await restart(redis)
    proxy.release.set()
    status, body = await forced
    assert status == 200, body
    new = body["access_token"]
    assert new != old and await works_at_the_provider(oidc, new)

    # what Redis acknowledged survives a SIGKILL: the token and its refresh token
    await restart(redis)
    assert await broker.access_token(runtime) == (200, body)
    status, again = await broker.force_refresh(runtime)
    assert status == 200, again
    newer = again["access_token"]
    assert newer != new and await works_at_the_provider(oidc, newer)
    assert oidc.token_requests("refresh_token") == 2
    assert oidc.stats()["token_errors"] == {}
    _, view = await broker.call("GET", f"/v1/connections/{connection_id}")
    assert (view["status"], view["refresh"]["failures"]) == ("active", 0)


async def test_killed_until_after_the_answer_the_rotation_is_kept(
    broker: Broker, redis: RedisServer, oidc: OidcPeer, proxy: HoldingTokenEndpoint
) -> None:
    """Issue 17's case: the provider rotated the refresh token, and Redis was down when its
    answer came. The caller gets its 503 at once; the broker keeps the answer in memory and
    writes it to the refresh journal once Redis is back, and the next lock holder applies
    it. The rotated token is not lost, the spent one is never sent again, and no stale token
    is served as valid."""
    connection_id, runtime = await broker.connect_oauth()
    status, first = await broker.access_token(runtime)
    forced = await held_refresh(broker, runtime, proxy)
    redis.kill()  # and it stays down while the answer arrives
    started = time.monotonic()
    proxy.release.set()
    status, body = await forced
    assert is_unavailable(status, body) and time.monotonic() - started < BOUND, body
    started = time.monotonic()
    status, body = await broker.access_token(runtime)
    # the read cache may still answer for up to a second: with the token as it was
    assert is_unavailable(status, body) or (status, body) == (200, first), body
    assert time.monotonic() - started < BOUND

    await asyncio.to_thread(redis.start)
    # the dead refresh's lock lives on in the AOF until its TTL: a forced refresh waits for
    # it, then recovers the journaled answer and refreshes with the rotated token
    deadline = time.monotonic() + 30
    while True:
        status, body = await broker.force_refresh(runtime)
        if status == 200 or time.monotonic() > deadline:
            break
        assert is_unavailable(status, body), body
        await asyncio.sleep(0.5)
    assert status == 200, body
    assert body["access_token"] != first["access_token"]
    assert await works_at_the_provider(oidc, body["access_token"])
    assert oidc.stats()["token_errors"] == {}  # the spent refresh token was never reused
    _, view = await broker.call("GET", f"/v1/connections/{connection_id}")
    assert (view["status"], view["reauth_reason"]) == ("active", None)
