"""Access tokens and refresh against a real oidc-provider that rotates refresh tokens: a reused
refresh token there revokes the whole grant, so any double refresh shows up as a dead grant."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broker.config import Settings
from broker.oauth.client_auth import basic_authorization_header
from broker.services.records import Connection
from broker.store import keys
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.e2e.harness import (
    TRICKY_SECRET,
    browser,
    client_credentials_manifest,
    forward,
    free_port,
    oauth_manifest,
    peer_client,
    run_connect,
    serve,
    start_connect,
    write_connectors,
)
from tests.helpers import admin, metric
from tests.peers.oidc import OidcPeer, oidc_peer_fixture

BROKER_PORT = free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
PROXY_PORT = free_port()
TTL = 4

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "rot-client", "client_secret_basic", BROKER_URL, "rot", client_secret=TRICKY_SECRET
            ),
            peer_client(
                "flaky-client",
                "client_secret_basic",
                BROKER_URL,
                "flaky",
                client_secret=TRICKY_SECRET,
            ),
            peer_client(
                "machine-client",
                "client_secret_basic",
                BROKER_URL,
                "machine",
                client_secret=TRICKY_SECRET,
            ),
        ],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": TTL,
    },
    scope="module",
)


class TokenProxy:
    """Forwards token requests to the peer, or answers 503 like a provider having a bad day."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing = False
        self.held: asyncio.Event | None = None
        """While set to an unset event, refresh requests wait for it (`reached` tells one
        came); code exchanges pass."""
        self.reached = asyncio.Event()
        self.canned: dict[str, Any] | None = None
        """Answered (once) to a refresh instead of forwarding it: the peer never sees it."""
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        body = await request.read()
        if b"grant_type=refresh_token" in body:
            self.reached.set()
            if self.held is not None:
                await self.held.wait()
            if self.canned is not None:
                canned, self.canned = self.canned, None
                return web.json_response(canned)
        if self.failing:
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        return await forward(request, self.upstream, body)


@pytest.fixture
async def proxy(oidc: OidcPeer) -> AsyncIterator[TokenProxy]:
    token_proxy = TokenProxy(oidc.token_endpoint)
    async with serve(token_proxy.app, PROXY_PORT):
        yield token_proxy


def make_broker(
    oidc: OidcPeer, tmp_path: Path, make_settings: Callable[..., Settings], **overrides: Any
) -> web.Application:
    folder = write_connectors(
        tmp_path / "connectors",
        [
            oauth_manifest("rot", oidc, rotatesRefreshTokens=True),
            oauth_manifest("flaky", oidc, tokenUrlTemplate=f"http://127.0.0.1:{PROXY_PORT}/token"),
            client_credentials_manifest("machine", oidc),
        ],
    )
    settings = make_settings(
        public_url=BROKER_URL,
        allowed_return_origins="https://dashboard.example.com",
        connectors_dirs=str(folder),
        events_pull_delay=0,
        **overrides,
    )
    return create_app(settings)


@pytest.fixture
def broker_app(
    oidc: OidcPeer, tmp_path: Path, make_settings: Callable[..., Settings]
) -> web.Application:
    return make_broker(oidc, tmp_path, make_settings, refresher=False)


@pytest.fixture
async def api(
    broker_app: web.Application, proxy: TokenProxy
) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        serve(broker_app, BROKER_PORT),
        aiohttp.ClientSession(base_url=BROKER_URL) as session,
    ):
        for key, client_id in (
            ("rot", "rot-client"),
            ("flaky", "flaky-client"),
            ("machine", "machine-client"),
        ):
            resp = await session.put(
                f"/v1/oauth-apps/{key}",
                headers=admin(),
                json={"client_id": client_id, "client_secret": TRICKY_SECRET},
            )
            assert resp.status == 200
        yield session


async def connected(api: aiohttp.ClientSession, connector: str = "rot") -> tuple[str, str]:
    """(connection id, runtime token) of a fresh OAuth connection."""
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, BROKER_URL, connector))
    assert result["status"] == "connected", result
    minted = await api.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": result["connection_id"]}
    )
    return result["connection_id"], str((await minted.json())["token"])


async def token_of(api: aiohttp.ClientSession, runtime: str, **params: str) -> dict[str, Any]:
    resp = await api.get(
        "/v1/runtime/oauth/access-token",
        params=params,
        headers={"Authorization": f"Bearer {runtime}"},
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def events_of(
    api: aiohttp.ClientSession, connection_id: str
) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the connection's events, in order."""
    resp = await api.get("/v1/events?limit=1000", headers=admin())
    assert resp.status == 200
    found = (await resp.json())["events"]
    return [(e["type"], e["data"]) for e in found if e["connection_id"] == connection_id]


async def wait_until_stale(api: aiohttp.ClientSession, runtime: str) -> str:
    """Sleep until the current token is past half its life (the broker's capped margin) and
    still valid. `expires_at` is whole seconds (truncated), hence the extra second."""
    first = await token_of(api, runtime)
    expires = calendar.timegm(time.strptime(first["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    await asyncio.sleep(max(0.0, expires - time.time() - TTL / 2 + 1.0))
    return str(first["access_token"])


async def userinfo(oidc: OidcPeer, access_token: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{oidc.issuer}/me", headers={"Authorization": f"Bearer {access_token}"}
        ) as resp,
    ):
        return resp.status


async def test_stampede_refreshes_once(api: aiohttp.ClientSession, oidc: OidcPeer) -> None:
    _, runtime = await connected(api)
    old = await wait_until_stale(api, runtime)
    oidc.reset_stats()
    counted = metric("broker_token_refreshes_total", connector="rot", outcome="ok")
    timed = metric("broker_token_refresh_duration_seconds_count", connector="rot")
    answers = await asyncio.gather(*(token_of(api, runtime) for _ in range(200)))
    tokens = {a["access_token"] for a in answers}
    assert len(tokens) == 1 and old not in tokens
    assert oidc.token_requests("refresh_token") == 1
    assert metric("broker_token_refreshes_total", connector="rot", outcome="ok") == counted + 1
    assert metric("broker_token_refresh_duration_seconds_count", connector="rot") == timed + 1
    (token,) = tokens
    assert await userinfo(oidc, token) == 200
    assert answers[0]["token_type"] == "Bearer" and "offline_access" in answers[0]["scopes"]
    fresh = await token_of(api, runtime)
    assert fresh["access_token"] == token  # fresh now: no second refresh
    assert oidc.token_requests("refresh_token") == 1


async def test_forced_refresh_is_single_flight(api: aiohttp.ClientSession, oidc: OidcPeer) -> None:
    _, runtime = await connected(api)
    before = await token_of(api, runtime)
    oidc.reset_stats()
    resps = await asyncio.gather(
        *(
            api.post("/v1/runtime/oauth/refresh", headers={"Authorization": f"Bearer {runtime}"})
            for _ in range(50)
        )
    )
    bodies = [await r.json() for r in resps]
    assert {r.status for r in resps} == {200}
    assert len({b["access_token"] for b in bodies}) == 1
    assert bodies[0]["access_token"] != before["access_token"]
    assert oidc.token_requests("refresh_token") == 1
    assert oidc.stats()["token_errors"] == {}


async def test_revoked_grant_needs_reauth_then_reconnects(
    api: aiohttp.ClientSession, oidc: OidcPeer, broker_app: web.Application
) -> None:
    connection_id, runtime = await connected(api)
    await token_of(api, runtime)
    # the user revokes the app at the provider: the stored refresh token dies
    record = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert record["oauth"]["has_refresh_token"]
    audit_before = await (
        await api.get(
            f"/v1/audit?tenant_id=tenant-a&connection_id={connection_id}", headers=admin()
        )
    ).json()
    assert audit_before["entries"]
    await revoke_grant(oidc, broker_app, connection_id)
    forced = await api.post(
        "/v1/runtime/oauth/refresh", headers={"Authorization": f"Bearer {runtime}"}
    )
    assert forced.status == 409
    assert (await forced.json())["error"] == "needs_reauth"
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert view["status"] == "needs_reauth"
    assert view["reauth_reason"] == "invalid_grant"
    assert view["refresh"]["last_error"] == "invalid_grant"
    again = await api.get(
        "/v1/runtime/oauth/access-token", headers={"Authorization": f"Bearer {runtime}"}
    )
    assert again.status == 409
    async with browser() as session:
        result = await run_connect(
            session, await start_connect(api, BROKER_URL, "rot", connection_id=connection_id)
        )
    assert result["connection_id"] == connection_id
    token = await token_of(api, runtime)
    assert await userinfo(oidc, token["access_token"]) == 200
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert (view["status"], view["reauth_reason"]) == ("active", None)
    assert [t for t, _ in await events_of(api, connection_id)] == [
        "connection.created",
        "connection.needs_reauth",
        "connection.reconnected",
    ]
    _, reauth, reconnected = await events_of(api, connection_id)
    assert reauth[1] == {
        "status": "needs_reauth",
        "error": "invalid_grant",
        "reason": "invalid_grant",
    }
    assert reconnected[1] == {"status": "active", "previous_status": "needs_reauth"}


async def revoke_grant(
    oidc: OidcPeer, app: web.Application, connection_id: str, client_id: str = "rot-client"
) -> None:
    """Revoke the grant at the provider, as a user removing the app would."""
    raw = await app[CONTEXT].store.get(keys.connection(connection_id))
    assert raw is not None
    token = Connection.model_validate_json(raw[0]).token
    assert token is not None and token.refresh_token is not None
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            oidc.revocation_endpoint,
            data={"token": token.refresh_token, "token_type_hint": "refresh_token"},
            headers={"Authorization": basic_authorization_header(client_id, TRICKY_SECRET)},
        ) as resp,
    ):
        assert resp.status == 200


async def test_transient_failures_keep_the_old_token(
    api: aiohttp.ClientSession, oidc: OidcPeer, proxy: TokenProxy
) -> None:
    connection_id, runtime = await connected(api, "flaky")
    old = await wait_until_stale(api, runtime)
    proxy.failing = True
    transient = metric("broker_token_refreshes_total", connector="flaky", outcome="transient")
    served = await token_of(api, runtime)
    assert served["access_token"] == old  # still valid: keep serving it
    assert (
        metric("broker_token_refreshes_total", connector="flaky", outcome="transient")
        == transient + 1
    )
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert view["status"] == "active"
    assert view["refresh"]["last_error"] == "http_503"
    assert view["refresh"]["failures"] == 1
    await asyncio.sleep(TTL / 2 + 0.2)  # now it has expired
    dead = await api.get(
        "/v1/runtime/oauth/access-token", headers={"Authorization": f"Bearer {runtime}"}
    )
    assert dead.status == 502
    assert (await dead.json())["error"] == "provider_error"
    proxy.failing = False
    recovered = await token_of(api, runtime)
    assert recovered["access_token"] != old
    assert await userinfo(oidc, recovered["access_token"]) == 200
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert (view["status"], view["refresh"]["failures"], view["refresh"]["last_error"]) == (
        "active",
        0,
        None,
    )
    # one event when the streak starts, however long it lasts, and one when it ends
    found = await events_of(api, connection_id)
    assert [t for t, _ in found] == [
        "connection.created",
        "connection.refresh_failed",
        "connection.recovered",
    ]
    (_, failed), (_, recovered) = found[1:]
    assert failed == {"status": "active", "error": "http_503", "failures": 1}
    assert recovered["last_error"] == "http_503" and recovered["failures"] >= 2
    assert "access_token" not in str(found) and old not in str(found)


async def test_backing_off_a_forced_refresh_holds_up_no_reader(
    api: aiohttp.ClientSession, proxy: TokenProxy
) -> None:
    """While backing off after a transient failure, a reader of a stale but valid token is
    served it at once, even while a forced refresh of the same connection waits on the
    provider."""
    connection_id, runtime = await connected(api, "flaky")
    old = await wait_until_stale(api, runtime)
    proxy.failing = True
    assert (await token_of(api, runtime))["access_token"] == old  # one failure: backing off
    proxy.held, proxy.reached = asyncio.Event(), asyncio.Event()
    forced = asyncio.ensure_future(
        api.post("/v1/runtime/oauth/refresh", headers={"Authorization": f"Bearer {runtime}"})
    )
    await asyncio.wait_for(proxy.reached.wait(), 1)
    readers = await asyncio.wait_for(
        asyncio.gather(*(token_of(api, runtime) for _ in range(5))), 0.5
    )
    assert {r["access_token"] for r in readers} == {old}
    assert not forced.done()
    proxy.held.set()
    resp = await forced
    assert resp.status == 200 and (await resp.json())["access_token"] == old
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert view["refresh"]["failures"] == 2


async def test_client_credentials(api: aiohttp.ClientSession, oidc: OidcPeer) -> None:
    oidc.reset_stats()
    resp = await api.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "tenant-m",
            "connector": "machine",
            "settings": {},
        },
    )
    assert resp.status == 201, await resp.text()
    connection_id = (await resp.json())["id"]
    assert oidc.token_requests("client_credentials") == 1
    minted = await api.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": connection_id}
    )
    runtime = (await minted.json())["token"]
    first = await token_of(api, runtime)
    await asyncio.sleep(TTL / 2 + 0.3)
    second = await token_of(api, runtime)
    assert first["access_token"] != second["access_token"]
    assert oidc.token_requests("client_credentials") == 2
    await api.put(
        "/v1/oauth-apps/machine",
        headers=admin(),
        json={"client_id": "machine-client", "client_secret": "wrong-secret-x"},
    )
    refused = await api.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "tenant-m",
            "connector": "machine",
            "settings": {},
        },
    )
    assert refused.status == 502
    listed = await (await api.get("/v1/connections?tenant_id=tenant-m", headers=admin())).json()
    assert [c["id"] for c in listed["connections"]] == [connection_id]


async def test_proactive_refresher(
    oidc: OidcPeer, proxy: TokenProxy, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    app = make_broker(oidc, tmp_path, make_settings, refresher=True)
    async with serve(app, BROKER_PORT), aiohttp.ClientSession(base_url=BROKER_URL) as api:
        await api.put(
            "/v1/oauth-apps/rot",
            headers=admin(),
            json={"client_id": "rot-client", "client_secret": TRICKY_SECRET},
        )
        _, runtime = await connected(api)
        first = await token_of(api, runtime)
        oidc.reset_stats()
        await asyncio.sleep(TTL * 1.6)  # no runtime calls meanwhile
        assert oidc.token_requests("refresh_token") >= 1
        calls = oidc.token_requests("refresh_token")
        later = await token_of(api, runtime)
        assert later["access_token"] != first["access_token"]
        assert (
            oidc.token_requests("refresh_token") == calls
        )  # served without waiting on the provider
        assert await userinfo(oidc, later["access_token"]) == 200
        assert oidc.stats()["token_errors"] == {}


async def test_the_sdk_against_the_real_broker(api: aiohttp.ClientSession, oidc: OidcPeer) -> None:
    """broker.runtime as connector code uses it, end to end."""
    from broker.runtime import BrokerClient, NotGranted, NotOAuth

    _, runtime = await connected(api)
    async with BrokerClient(BROKER_URL, runtime) as client:
        token = await client.oauth.access_token()
        assert await userinfo(oidc, token) == 200
        refreshed = await client.oauth.refresh()
        assert refreshed.access_token != token
        assert await userinfo(oidc, refreshed.access_token) == 200
        with pytest.raises(NotGranted):
            await client.secrets.get("api_key")
    resp = await api.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "tenant-s",
            "connector": "stripe",
            "settings": {"api_key": "sk_test_SDK"},
        },
    )
    minted = await api.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": (await resp.json())["id"]}
    )
    async with BrokerClient(BROKER_URL, (await minted.json())["token"]) as client:
        assert await client.secrets.get("api_key") == "sk_test_SDK"
        with pytest.raises(NotOAuth):
            await client.oauth.access_token()
