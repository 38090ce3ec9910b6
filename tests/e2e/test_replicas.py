"""Two broker processes sharing one Redis, against an oidc-provider that rotates refresh tokens
and revokes the grant on any reuse: exactly one refresh per expiry, whatever the load, and a
replica killed while holding the refresh lock is taken over without losing the grant."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import (
    RETURN_ORIGIN,
    TRICKY_SECRET,
    browser,
    forward,
    free_port,
    oauth_manifest,
    peer_client,
    run_connect,
    serve,
    start_connect,
    write_connectors,
)
from tests.e2e.processes import BrokerProcess
from tests.helpers import ADMIN_TOKEN, admin
from tests.peers.oidc import OidcPeer, oidc_peer_fixture
from tests.store.redis_servers import RedisServer, redis_server_fixture

# Tokens live TTL seconds, so each is stale after TTL/2 (the capped margin). A burst must end
# well inside one margin, or a loaded machine sees a second, legitimate, expiry mid-burst.
TTL = 4
CYCLES = 20  # the issue: 20 successive expiry cycles under load
PORT_A, PORT_B, HOLD_PORT = free_port(), free_port(), free_port()
URL_A, URL_B = f"http://127.0.0.1:{PORT_A}", f"http://127.0.0.1:{PORT_B}"

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "rep-client", "client_secret_basic", URL_A, "rep", client_secret=TRICKY_SECRET
            ),
            peer_client(
                "held-client", "client_secret_basic", URL_A, "held", client_secret=TRICKY_SECRET
            ),
        ],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": TTL,
    },
    scope="module",
)


class HoldingProxy:
    """In front of the token endpoint: in `hold` mode it keeps refresh requests waiting, and
    drops (never forwards) one whose client went away - a replica killed mid-refresh."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hold = False
        self.held = 0
        self.dropped = 0
        self.release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.hold and b"refresh_token" in body:
            self.held += 1
            try:
                await self.release.wait()
            except asyncio.CancelledError:  # the test server cancels handlers of gone clients
                self.dropped += 1
                raise
            if request.transport is None or request.transport.is_closing():
                self.dropped += 1
                return web.Response(status=499)
        return await forward(request, self.upstream, body)


redis = redis_server_fixture()


def broker_env(
    tmp: Path, redis: RedisServer, oidc: OidcPeer, namespace_db: int, refresher: bool
) -> dict[str, str]:
    keyring = tmp / "keyring.json"
    if not keyring.exists():
        save_keyring(keyring, Keyring.generate("k1"))
    folder = write_connectors(
        tmp / "connectors",
        [
            oauth_manifest("rep", oidc, rotatesRefreshTokens=True),
            oauth_manifest("held", oidc, tokenUrlTemplate=f"http://127.0.0.1:{HOLD_PORT}/token"),
        ],
    )
    return {
        "BROKER_STORE": redis.url.rsplit("/", 1)[0] + f"/{namespace_db}",
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "BROKER_PUBLIC_URL": URL_A,
        "BROKER_ALLOWED_RETURN_ORIGINS": RETURN_ORIGIN,
        "BROKER_CONNECTORS_DIRS": str(folder),
        "BROKER_REFRESHER": "true" if refresher else "false",
        "BROKER_REFRESH_LOCK_TTL": "3",
    }


_dbs = itertools.count(1)


@pytest.fixture
async def pair(
    tmp_path: Path, redis: RedisServer, oidc: OidcPeer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[BrokerProcess, BrokerProcess, HoldingProxy]]:
    refresher = bool(getattr(request, "param", False))
    env = broker_env(tmp_path, redis, oidc, next(_dbs), refresher)
    a = BrokerProcess(PORT_A, env, tmp_path / "a.log")
    b = BrokerProcess(PORT_B, env, tmp_path / "b.log")
    proxy = HoldingProxy(oidc.token_endpoint)
    async with serve(proxy.app, HOLD_PORT):
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        try:
            async with aiohttp.ClientSession() as api:
                for key, client_id in (("rep", "rep-client"), ("held", "held-client")):
                    resp = await api.put(
                        f"{URL_A}/v1/oauth-apps/{key}",
                        headers=admin(),
                        json={"client_id": client_id, "client_secret": TRICKY_SECRET},
                    )
                    assert resp.status == 200
            yield a, b, proxy
        finally:
            proxy.release.set()
            a.stop()
            b.stop()
    for log in (tmp_path / "a.log", tmp_path / "b.log"):
        assert TRICKY_SECRET not in log.read_text()


async def connect(connector: str) -> tuple[str, str]:
    async with aiohttp.ClientSession() as api, browser() as session:
        result = await run_connect(session, await start_connect(api, URL_A, connector))
        assert result["status"] == "connected", result
        minted = await api.post(
            f"{URL_A}/v1/runtime-tokens",
            headers=admin(),
            json={"connection_id": result["connection_id"]},
        )
        return result["connection_id"], str((await minted.json())["token"])


async def burst(session: aiohttp.ClientSession, runtime: str, n: int) -> list[dict[str, Any]]:
    async def one(url: str) -> dict[str, Any]:
        async with session.get(
            f"{url}/v1/runtime/oauth/access-token", headers={"Authorization": f"Bearer {runtime}"}
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    return await asyncio.gather(*(one(URL_A if i % 2 else URL_B) for i in range(n)))


async def works(oidc: OidcPeer, access_token: str) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{oidc.issuer}/me", headers={"Authorization": f"Bearer {access_token}"}
        ) as resp,
    ):
        return resp.status == 200


async def test_one_refresh_per_expiry_across_replicas(
    pair: tuple[BrokerProcess, BrokerProcess, HoldingProxy], oidc: OidcPeer
) -> None:
    connection_id, runtime = await connect("rep")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # a fresh token: this burst only opens the 500 connections the cycles reuse
        (previous,) = {a["access_token"] for a in await burst(session, runtime, 500)}
        loop = asyncio.get_running_loop()
        for cycle in range(CYCLES):
            await asyncio.sleep(TTL / 2 + 0.15)  # past the capped margin: stale for everyone
            oidc.reset_stats()
            started = loop.time()
            answers = await burst(session, runtime, 500)
            took = loop.time() - started
            tokens = {a["access_token"] for a in answers}
            assert len(tokens) == 1, f"cycle {cycle}: {len(tokens)} tokens, burst took {took:.2f}s"
            assert previous not in tokens, f"cycle {cycle}: no refresh happened"
            assert oidc.token_requests("refresh_token") == 1, f"cycle {cycle}: {oidc.stats()}"
            assert oidc.stats()["token_errors"] == {}
            (previous,) = tokens
        assert await works(oidc, previous)
        view = await (
            await session.get(f"{URL_B}/v1/connections/{connection_id}", headers=admin())
        ).json()
        assert view["status"] == "active"


async def test_killed_lock_holder_is_taken_over(
    pair: tuple[BrokerProcess, BrokerProcess, HoldingProxy], oidc: OidcPeer
) -> None:
    a, _, proxy = pair
    connection_id, runtime = await connect("held")
    async with aiohttp.ClientSession() as session:
        first = (await burst(session, runtime, 1))[0]["access_token"]
        await asyncio.sleep(TTL / 2 + 0.15)
        proxy.hold = True
        oidc.reset_stats()
        stuck = asyncio.create_task(
            session.get(
                f"{URL_A}/v1/runtime/oauth/access-token",
                headers={"Authorization": f"Bearer {runtime}"},
            )
        )
        for _ in range(100):
            if proxy.held:
                break
            await asyncio.sleep(0.05)
        assert proxy.held == 1, "replica A never reached the token endpoint"
        a.kill()  # holding the refresh lock, its provider call in flight
        with pytest.raises(aiohttp.ClientError):
            await stuck
        proxy.hold = False
        proxy.release.set()
        await asyncio.sleep(0.2)
        assert proxy.dropped == 1  # the killed replica's refresh never reached the provider
        resp = await session.get(
            f"{URL_B}/v1/runtime/oauth/access-token", headers={"Authorization": f"Bearer {runtime}"}
        )
        assert resp.status == 200, await resp.text()
        taken_over = (await resp.json())["access_token"]
        assert taken_over != first
        assert oidc.token_requests("refresh_token") == 1
        assert await works(oidc, taken_over)
        view = await (
            await session.get(f"{URL_B}/v1/connections/{connection_id}", headers=admin())
        ).json()
        assert view["status"] == "active"


@pytest.mark.parametrize("pair", [True], indirect=True)
async def test_background_refreshers_never_double_refresh(
    pair: tuple[BrokerProcess, BrokerProcess, HoldingProxy], oidc: OidcPeer
) -> None:
    connections = [await connect("rep") for _ in range(8)]
    oidc.reset_stats()
    await asyncio.sleep(TTL * 1.5)  # several proactive refreshes (every quarter life) each
    refreshes = oidc.token_requests("refresh_token")
    assert refreshes >= len(connections) * 2  # both replicas' refreshers kept every one fresh
    assert oidc.stats()["token_errors"] == {}  # a double refresh would reuse a rotated token
    async with aiohttp.ClientSession() as session:
        for connection_id, runtime in connections:
            token = (await burst(session, runtime, 2))[0]["access_token"]
            assert await works(oidc, token)
            view = await (
                await session.get(f"{URL_A}/v1/connections/{connection_id}", headers=admin())
            ).json()
            assert view["status"] == "active"
