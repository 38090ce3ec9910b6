"""What the Redis fault tests share: a Redis that keeps an append-only file, a `broker serve`
process on it with a client, a token endpoint that can hold the provider's answer, and the
bounds the broker must keep while Redis is away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import (
    RETURN_ORIGIN,
    TRICKY_SECRET,
    browser,
    call_upstream,
    oauth_manifest,
    peer_client,
    run_connect,
    start_connect,
    write_connectors,
)
from tests.e2e.processes import BrokerProcess
from tests.helpers import ADMIN_TOKEN
from tests.peers.oidc import OidcPeer
from tests.store.redis_servers import AOF_ALWAYS, RedisServer, require_binaries

BOUND = 2.0
"""Seconds within which every request is answered while Redis is stopped (the issue's bound;
a closed port refuses at once, and the store's own deadline is 2 s)."""
HANG = 10.0
"""A request still unanswered after this is a hang: the client gives up and the test fails."""
LOCK_TTL = 5.0
"""The refresh lock: a provider call gets up to 3.75 s of it, time enough to kill and restart
Redis while the provider's answer is held."""
CANARY = "sk_test_OUTAGE_CANARY_"
API_KEY = CANARY + "{}_5d41402abc4b2a76"


def peer_config(broker_url: str) -> dict[str, Any]:
    """The oidc peer: rotating refresh tokens, and tokens that live an hour, so nothing is
    refreshed unless a test asks."""
    client = peer_client(
        "rot-client", "client_secret_basic", broker_url, "rot", client_secret=TRICKY_SECRET
    )
    return {
        "clients": [client],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": 3600,
    }


@contextmanager
def aof_redis(directory: Path) -> Iterator[RedisServer]:
    require_binaries()
    server = RedisServer(directory, None, *AOF_ALWAYS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class HoldingTokenEndpoint:
    """In front of the real token endpoint. While `holding`, a refresh is passed on (the
    provider rotates the refresh token then) and its answer kept until `release` is set:
    `answered` says the provider has answered, so Redis can be killed at a known point."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.holding = False
        self.answered = asyncio.Event()
        self.release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        body = await request.read()
        status, answer = await call_upstream(request, self.upstream, body)
        if self.holding and b"grant_type=refresh_token" in body:
            self.holding = False
            self.answered.set()
            await self.release.wait()
        return web.Response(body=answer, status=status, content_type="application/json")


def is_unavailable(status: int, body: Any) -> bool:
    """The answer while the store is away: 503 with exactly `error` and `message`."""
    return (
        status == 503
        and isinstance(body, dict)
        and set(body) == {"error", "message"}
        and body["error"] == "store_unavailable"
    )


class Broker:
    """A `broker serve` process, and a client for it that never waits longer than HANG."""

    def __init__(self, process: BrokerProcess, session: aiohttp.ClientSession) -> None:
        self.process = process
        self.session = session

    async def call(
        self, method: str, path: str, token: str = ADMIN_TOKEN, **body: Any
    ) -> tuple[int, Any]:
        """(status, the JSON answer, or its text when it is not JSON)"""
        async with self.session.request(
            method,
            self.process.url + path,
            headers={"Authorization": f"Bearer {token}"},
            json=body or None,
            timeout=aiohttp.ClientTimeout(total=HANG),
        ) as resp:
            text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    async def runtime_token(self, connection_id: str) -> str:
        status, body = await self.call("POST", "/v1/runtime-tokens", connection_id=connection_id)
        assert status == 201, body
        return str(body["token"])

    async def connect_oauth(self, **body: str) -> tuple[str, str]:
        """(connection id, runtime token) of an OAuth connection made through Connect."""
        async with browser() as tab:
            link = await start_connect(self.session, self.process.url, "rot", **body)
            result = await run_connect(tab, link)
        assert result["status"] == "connected", result
        return result["connection_id"], await self.runtime_token(result["connection_id"])

    async def connect_api_key(self, tenant_id: str, n: int) -> tuple[str, str]:
        """(connection id, runtime token) of a Stripe connection with canary secrets."""
        settings = {"api_key": API_KEY.format(n), "webhook_secret": f"whsec_{n}"}
        status, body = await self.call(
            "POST", "/v1/connections", tenant_id=tenant_id, connector="stripe", settings=settings
        )
        assert status == 201, body
        return body["id"], await self.runtime_token(body["id"])

    async def access_token(self, runtime: str) -> tuple[int, Any]:
        return await self.call("GET", "/v1/runtime/oauth/access-token", runtime)

    async def force_refresh(self, runtime: str) -> tuple[int, Any]:
        return await self.call("POST", "/v1/runtime/oauth/refresh", runtime)


@asynccontextmanager
async def running_broker(
    port: int, tmp_path: Path, redis: RedisServer, oidc: OidcPeer, token_url: str
) -> AsyncIterator[Broker]:
    """A broker on `redis` with the `rot` connector (its token endpoint at `token_url`) and
    the bundled ones; afterwards, no secret in its log."""
    keyring = tmp_path / "keyring.json"
    save_keyring(keyring, Keyring.generate("k1"))
    manifest = oauth_manifest("rot", oidc, tokenUrlTemplate=token_url)
    env = {
        "BROKER_STORE": redis.url,
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BROKER_ALLOWED_RETURN_ORIGINS": RETURN_ORIGIN,
        "BROKER_CONNECTORS_DIRS": str(write_connectors(tmp_path / "connectors", [manifest])),
        "BROKER_REFRESH_LOCK_TTL": str(LOCK_TTL),
        "BROKER_FORCED_REFRESH_INTERVAL": "0",
    }
    process = BrokerProcess(port, env, tmp_path / "broker.log")
    await asyncio.to_thread(process.start)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            broker = Broker(process, session)
            app = {"client_id": "rot-client", "client_secret": TRICKY_SECRET}
            assert (await broker.call("PUT", "/v1/oauth-apps/rot", **app))[0] == 200
            yield broker
    finally:
        process.stop()
    log = process.log.read_text()
    assert TRICKY_SECRET not in log and CANARY not in log
