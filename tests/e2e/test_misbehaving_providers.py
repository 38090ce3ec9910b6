"""Token endpoints that misbehave in front of the real npm oidc-provider: one that trickles its
answers out in small pieces (a relay, as some providers and corporate proxies do), and one
whose refresh answer is 100,000 nested `[` (a poisoned connection on the same replica)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web

from broker.config import Settings
from broker.runtime import BrokerClient
from broker.services.records import Connection
from broker.store import keys
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.e2e.harness import (
    TRICKY_SECRET,
    ChunkingRelay,
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
from tests.helpers import Framing, admin, metric
from tests.peers.oidc import OidcPeer, oidc_peer_fixture

BROKER_PORT = free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
RELAY_PORT = free_port()
POISON_PORT = free_port()
TTL = 4
CONNECTORS = ("relayed", "poisoned", "plain")

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                f"{key}-client", "client_secret_basic", BROKER_URL, key, client_secret=TRICKY_SECRET
            )
            for key in CONNECTORS
        ],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": TTL,
    },
    scope="module",
)


class PoisonedTokenEndpoint:
    """Hands code exchanges on to the real endpoint; answers every refresh with JSON nested
    deeper than any decoder goes."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        body = await request.read()
        if parse_qs(body.decode()).get("grant_type") == ["refresh_token"]:
            self.refused.set()
            return web.Response(body=b"[" * 100_000, content_type="application/json")
        return await forward(request, self.upstream, body)


@pytest.fixture
async def relay(oidc: OidcPeer) -> AsyncIterator[ChunkingRelay]:
    chunking = ChunkingRelay(oidc.token_endpoint)
    async with serve(chunking.app, RELAY_PORT):
        yield chunking


@pytest.fixture
async def poison(oidc: OidcPeer) -> AsyncIterator[PoisonedTokenEndpoint]:
    endpoint = PoisonedTokenEndpoint(oidc.token_endpoint)
    async with serve(endpoint.app, POISON_PORT):
        yield endpoint


def make_broker(
    oidc: OidcPeer, tmp_path: Path, make_settings: Callable[..., Settings], *, refresher: bool
) -> web.Application:
    folder = write_connectors(
        tmp_path / "connectors",
        [
            oauth_manifest(
                "relayed", oidc, tokenUrlTemplate=f"http://127.0.0.1:{RELAY_PORT}/token"
            ),
            oauth_manifest(
                "poisoned", oidc, tokenUrlTemplate=f"http://127.0.0.1:{POISON_PORT}/token"
            ),
            oauth_manifest("plain", oidc),
        ],
    )
    settings = make_settings(
        public_url=BROKER_URL,
        allowed_return_origins="https://dashboard.example.com",
        connectors_dirs=str(folder),
        refresher=refresher,
    )
    return create_app(settings)


@pytest.fixture
async def api() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=BROKER_URL) as session:
        yield session


async def register_apps(api: aiohttp.ClientSession) -> None:
    for key in CONNECTORS:
        resp = await api.put(
            f"/v1/oauth-apps/{key}",
            headers=admin(),
            json={"client_id": f"{key}-client", "client_secret": TRICKY_SECRET},
        )
        assert resp.status == 200, await resp.text()


async def connected(api: aiohttp.ClientSession, connector: str) -> tuple[str, str]:
    """(connection id, runtime token) of a connection made through the whole Connect flow."""
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, BROKER_URL, connector))
    assert result["status"] == "connected", result
    minted = await api.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": result["connection_id"]}
    )
    return result["connection_id"], str((await minted.json())["token"])


async def works_at_the_provider(oidc: OidcPeer, access_token: str) -> bool:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{oidc.issuer}/me", headers={"Authorization": f"Bearer {access_token}"}
        ) as resp,
    ):
        return resp.status == 200


async def access_token_of(app: web.Application, connection_id: str) -> str:
    """The access token as stored, read without asking for a fresh one."""
    raw = await app[CONTEXT].store.get(keys.connection(connection_id))
    assert raw is not None
    token = Connection.model_validate_json(raw[0]).token
    assert token is not None
    return token.access_token


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_connect_and_refresh_through_a_relay_that_trickles_token_answers(
    oidc: OidcPeer,
    relay: ChunkingRelay,
    api: aiohttp.ClientSession,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    framing: Framing,
) -> None:
    relay.framing = framing
    app = make_broker(oidc, tmp_path, make_settings, refresher=False)
    async with serve(app, BROKER_PORT):
        await register_apps(api)
        oidc.reset_stats()
        connection_id, runtime = await connected(api, "relayed")  # the code exchange
        assert relay.relayed == 1
        async with BrokerClient(BROKER_URL, runtime) as client:
            first = await client.oauth.access_token()
            refreshed = await client.oauth.refresh()
        assert relay.relayed == 2
        assert refreshed.access_token != first
        assert await works_at_the_provider(oidc, refreshed.access_token)
        assert oidc.token_requests("authorization_code") == 1
        assert oidc.token_requests("refresh_token") == 1
        assert oidc.stats()["token_errors"] == {}
        view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
        assert (view["status"], view["refresh"]["failures"]) == ("active", 0)


async def test_a_poisoned_connection_does_not_stop_the_refresher_for_the_others(
    oidc: OidcPeer,
    poison: PoisonedTokenEndpoint,
    api: aiohttp.ClientSession,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    app = make_broker(oidc, tmp_path, make_settings, refresher=True)
    async with serve(app, BROKER_PORT):
        await register_apps(api)
        refused_before = metric(
            "broker_token_refreshes_total", connector="poisoned", outcome="error"
        )
        poisoned_id, _ = await connected(api, "poisoned")
        # the refresher meets the poisoned answer a second after the connect (TTL 4 s) ...
        await asyncio.wait_for(poison.refused.wait(), 3 * TTL)
        # ... and must still refresh a connection made after that, with no runtime asking
        plain_id, _ = await connected(api, "plain")
        first = await access_token_of(app, plain_id)
        for _ in range(int(3 * TTL / 0.1)):
            latest = await access_token_of(app, plain_id)
            if latest != first:
                break
            await asyncio.sleep(0.1)
        assert latest != first, "the refresher stopped refreshing"
        assert await works_at_the_provider(oidc, latest)
        # the poisoned answer is a malformed one: recorded, backed off, the grant kept
        view = await (await api.get(f"/v1/connections/{poisoned_id}", headers=admin())).json()
        assert view["status"] == "active"
        assert view["refresh"]["last_error"] == "http_200" and view["refresh"]["failures"] >= 1
        assert (
            metric("broker_token_refreshes_total", connector="poisoned", outcome="error")
            >= refused_before + 1
        )
    assert "[[[" not in caplog.text
