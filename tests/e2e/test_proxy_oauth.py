"""OAuth connections through the egress proxy, against the real oidc-provider peer (which
rotates refresh tokens and revokes the grant on reuse): the proxy injects the connection's
access token; a provider 401 makes one forced refresh and one retry, for an idempotent call
with a body the broker holds, and never for a POST or a body it streamed on."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from broker.config import Settings
from broker.web.app import create_app
from tests.e2e.harness import (
    TRICKY_SECRET,
    browser,
    free_port,
    oauth_manifest,
    peer_client,
    run_connect,
    serve,
    start_connect,
    works_at_the_provider,
    write_connectors,
)
from tests.helpers import admin
from tests.peers.oidc import OidcPeer, oidc_peer_fixture
from tests.web.proxy.fake_api import FakeApi, fake_api_fixture

BROKER_PORT = free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "pxo-client", "client_secret_basic", BROKER_URL, "pxo", client_secret=TRICKY_SECRET
            )
        ],
        "rotateRefreshToken": True,
    },
    scope="module",
)


fake = fake_api_fixture()


@pytest.fixture
async def api(
    oidc: OidcPeer,
    fake: tuple[FakeApi, int],
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[aiohttp.ClientSession]:
    manifest = oauth_manifest("pxo", oidc)
    manifest["permissions"]["http"].append(f"http://127.0.0.2:{fake[1]}/*")
    settings = make_settings(
        public_url=BROKER_URL,
        allowed_return_origins="https://dashboard.example.com",
        connectors_dirs=str(write_connectors(tmp_path / "connectors", [manifest])),
        refresher=False,
        forced_refresh_interval=0,
    )
    async with (
        serve(create_app(settings), BROKER_PORT),
        aiohttp.ClientSession(base_url=BROKER_URL) as session,
    ):
        resp = await session.put(
            "/v1/oauth-apps/pxo",
            headers=admin(),
            json={"client_id": "pxo-client", "client_secret": TRICKY_SECRET},
        )
        assert resp.status == 200
        yield session


async def runtime_token(api: aiohttp.ClientSession) -> str:
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, BROKER_URL, "pxo"))
    assert result["status"] == "connected", result
    minted = await api.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": result["connection_id"]}
    )
    return str((await minted.json())["token"])


def bearers(fake: FakeApi) -> list[str]:
    return [r.headers.get("Authorization", "").removeprefix("Bearer ") for r in fake.received]


async def test_the_access_token_is_injected_and_a_401_refreshes_once_and_retries_once(
    api: aiohttp.ClientSession, oidc: OidcPeer, fake: tuple[FakeApi, int]
) -> None:
    provider, port = fake
    token = await runtime_token(api)
    runtime = {"Authorization": f"Bearer {token}"}
    url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/v1/me"

    resp = await api.get(url, headers=runtime)
    assert resp.status == 200, await resp.text()
    (first,) = bearers(provider)
    assert first != token and await works_at_the_provider(oidc, first)

    # the provider revokes that token early: one forced refresh, one retry with the new one
    provider.refuse_tokens.add(first)
    resp = await api.get(url, headers=runtime)
    assert resp.status == 200, await resp.text()
    assert bearers(provider)[1:] == [first, bearers(provider)[2]]
    second = bearers(provider)[2]
    assert second != first and await works_at_the_provider(oidc, second)

    # a held body goes again with the retry (PUT is idempotent)
    provider.refuse_tokens.add(second)
    resp = await api.put(url, headers=runtime, data=b'{"name": "Ada"}')
    assert resp.status == 200
    third = bearers(provider)[-1]
    assert bearers(provider)[-2:] == [second, third] and third != second
    assert [r.body for r in provider.received[-2:]] == [b'{"name": "Ada"}'] * 2

    # a provider that refuses every token: one refresh, one retry, then its 401 as it is
    provider.refuse_tokens.add("*")
    before = len(provider.received)
    resp = await api.delete(url, headers=runtime)
    assert resp.status == 401
    assert await resp.json() == {"error": "invalid_token"}
    assert len(provider.received) - before == 2
    assert bearers(provider)[-2] == third != bearers(provider)[-1]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_post_is_never_retried(
    api: aiohttp.ClientSession, fake: tuple[FakeApi, int], streamed: bool
) -> None:
    provider, port = fake
    token = await runtime_token(api)
    runtime = {"Authorization": f"Bearer {token}"}
    url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/v1/charges"
    assert (await api.get(url, headers=runtime)).status == 200
    (used,) = bearers(provider)
    provider.refuse_tokens.add(used)

    async def chunks() -> AsyncIterable[bytes]:
        for _ in range(4):
            yield b"a" * 100_000

    body: bytes | AsyncIterable[bytes] = chunks() if streamed else b"amount=100"
    resp = await api.post(url, headers=runtime, data=body)
    assert resp.status == 401
    assert bearers(provider) == [used, used]  # the POST went once, not again
    assert len(provider.received[-1].body) == (400_000 if streamed else 10)
    # and no refresh happened behind the runtime's back: the token is still the one refused
    resp = await api.get(
        "/v1/runtime/oauth/access-token", headers={"Authorization": f"Bearer {token}"}
    )
    assert (await resp.json())["access_token"] == used
