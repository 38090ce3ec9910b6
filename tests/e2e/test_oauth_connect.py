"""The Connect button end to end: broker <-> real oidc-provider <-> scripted browser.

Every failure case checks the documented answer AND that nothing was stored, and the
captured logs never contain a client secret, an authorization code or a token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.config import Settings
from broker.oauth.client_auth import basic_authorization_header
from broker.services.connect import oauth_flow as oauth_connect
from broker.services.records import Connection
from broker.store import keys
from broker.web.app import create_app
from broker.web.state import CONTEXT, STORE
from tests.e2e.harness import (
    RETURN_ORIGIN,
    RETURN_URL,
    TRICKY_SECRET,
    browser,
    follow_callback,
    forward,
    free_port,
    oauth_manifest,
    peer_client,
    query_of,
    run_connect,
    serve,
    start_connect,
    to_callback,
    write_connectors,
)
from tests.helpers import admin, metric
from tests.peers.oidc import OidcPeer, oidc_peer_fixture

BROKER_PORT = free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
BAD_TOKEN_PORT = free_port()
GATED_TOKEN_PORT = free_port()
POST_SECRET = "post-secret-CANARY-5e8dd316"
ROTATED_SECRET = "rotated-secret-CANARY-9a0b1c2d"
JWT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWT_PEM = JWT_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def _jwk() -> dict[str, Any]:
    import base64

    numbers = JWT_KEY.public_key().public_numbers()

    def b64(n: int) -> str:
        return (
            base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))
            .rstrip(b"=")
            .decode()
        )

    return {
        "kty": "RSA",
        "kid": "broker-test",
        "alg": "RS256",
        "use": "sig",
        "n": b64(numbers.n),
        "e": b64(numbers.e),
    }


oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "basic-client",
                "client_secret_basic",
                BROKER_URL,
                "oidc-basic",
                client_secret=TRICKY_SECRET,
            ),
            peer_client(
                "post-client",
                "client_secret_post",
                BROKER_URL,
                "oidc-post",
                client_secret=POST_SECRET,
            ),
            peer_client(
                "jwt-client", "private_key_jwt", BROKER_URL, "oidc-jwt", jwks={"keys": [_jwk()]}
            ),
            peer_client(
                "wrong-iss-client",
                "client_secret_basic",
                BROKER_URL,
                "oidc-wrong-iss",
                client_secret=TRICKY_SECRET,
            ),
            peer_client(
                "bad-token-client",
                "client_secret_basic",
                BROKER_URL,
                "oidc-badtoken",
                client_secret=TRICKY_SECRET,
            ),
            peer_client(
                "bad-revoke-client",
                "client_secret_basic",
                BROKER_URL,
                "oidc-badrevoke",
                client_secret=TRICKY_SECRET,
            ),
            peer_client(
                "gated-client",
                "client_secret_basic",
                BROKER_URL,
                "oidc-gated",
                client_secret=TRICKY_SECRET,
            ),
            peer_client(
                "rotating-client",
                "client_secret_basic",
                BROKER_URL,
                "oidc-rotating",
                client_secret=ROTATED_SECRET,
            ),
        ],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": 3600,
    },
    scope="module",
)


class BadTokenEndpoint:
    """A token endpoint that fails the way real ones do (the peer cannot be made to)."""

    def __init__(self) -> None:
        self.mode = "500"
        self.calls = 0
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)
        self.app.router.add_post("/revoke", self.revoke)

    async def revoke(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": "server_error"}, status=500)

    async def token(self, request: web.Request) -> web.Response:
        self.calls += 1
        await request.read()
        if self.mode == "500":
            return web.json_response({"error": "server_error"}, status=500)
        if self.mode == "html":
            return web.Response(
                text="<html><body>Maintenance</body></html>", content_type="text/html"
            )
        if self.mode == "bot":  # Slack's answer: a bearer token by another name
            return web.json_response(
                {"access_token": "xoxb-1", "token_type": "bot", "expires_in": 3600}
            )
        if self.mode == "invalid-json":
            return web.Response(text='{"access_token": "abc', content_type="application/json")
        return web.json_response({"token_type": "bearer"})  # no access_token


class GatedTokenRelay:
    """Passes token requests on to the peer, each held until `opened`: a test lines up
    concurrent code exchanges behind the first one."""

    def __init__(self) -> None:
        self.upstream = ""
        self.arrivals = 0
        self.arrived = [asyncio.Event(), asyncio.Event()]
        self.opened = asyncio.Event()
        self.opened.set()
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrivals += 1
        self.arrived[min(self.arrivals, 2) - 1].set()
        await self.opened.wait()
        return await forward(request, self.upstream, body)


@pytest.fixture
async def gated_token(oidc: OidcPeer) -> AsyncIterator[GatedTokenRelay]:
    relay = GatedTokenRelay()
    relay.upstream = oidc.token_endpoint
    async with serve(relay.app, GATED_TOKEN_PORT):
        yield relay


@pytest.fixture
async def bad_token() -> AsyncIterator[BadTokenEndpoint]:
    endpoint = BadTokenEndpoint()
    async with serve(endpoint.app, BAD_TOKEN_PORT):
        yield endpoint


@pytest.fixture
async def broker(
    oidc: OidcPeer,
    bad_token: BadTokenEndpoint,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[web.Application]:
    caplog.set_level(logging.DEBUG)
    folder = write_connectors(
        tmp_path / "connectors",
        [
            oauth_manifest("oidc-basic", oidc),
            oauth_manifest("oidc-post", oidc, tokenAuthMethod="client_secret_post"),
            oauth_manifest("oidc-jwt", oidc, tokenAuthMethod="private_key_jwt"),
            oauth_manifest("oidc-wrong-iss", oidc, issuer="http://127.0.0.1:1/not-the-issuer"),
            oauth_manifest(
                "oidc-badtoken",
                oidc,
                tokenUrlTemplate=f"http://127.0.0.1:{BAD_TOKEN_PORT}/token",
                bearerTokenTypes=["bot"],
            ),
            oauth_manifest(
                "oidc-badrevoke",
                oidc,
                revocationUrlTemplate=f"http://127.0.0.1:{BAD_TOKEN_PORT}/revoke",
            ),
            oauth_manifest("oidc-rotating", oidc),
            oauth_manifest(
                "oidc-gated",
                oidc,
                tokenUrlTemplate=f"http://127.0.0.1:{GATED_TOKEN_PORT}/token",
            ),
        ],
    )
    settings = make_settings(
        public_url=BROKER_URL, allowed_return_origins=RETURN_ORIGIN, connectors_dirs=str(folder)
    )
    app = create_app(settings)
    async with serve(app, BROKER_PORT), aiohttp.ClientSession() as api:
        for credential_key, body in {
            "oidc_basic": {"client_id": "basic-client", "client_secret": TRICKY_SECRET},
            "oidc_post": {"client_id": "post-client", "client_secret": POST_SECRET},
            "oidc_jwt": {
                "client_id": "jwt-client",
                "private_key": JWT_PEM,
                "key_id": "broker-test",
            },
            "oidc_wrong_iss": {"client_id": "wrong-iss-client", "client_secret": TRICKY_SECRET},
            "oidc_badtoken": {"client_id": "bad-token-client", "client_secret": TRICKY_SECRET},
            "oidc_badrevoke": {"client_id": "bad-revoke-client", "client_secret": TRICKY_SECRET},
            "oidc_gated": {"client_id": "gated-client", "client_secret": TRICKY_SECRET},
            # the provider already has the new secret; the broker still has the old one
            "oidc_rotating": {
                "client_id": "rotating-client",
                "client_secret": "old-secret-0123456789",
            },
        }.items():
            resp = await api.put(
                f"{BROKER_URL}/v1/oauth-apps/{credential_key}", json=body, headers=admin()
            )
            assert resp.status == 200
        oidc.reset_stats()
        yield app
    for secret in (TRICKY_SECRET, POST_SECRET, ROTATED_SECRET, "BEGIN PRIVATE KEY"):
        assert secret not in caplog.text


@pytest.fixture
async def api() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=BROKER_URL, headers=admin()) as session:
        yield session


async def stored_connections(app: web.Application) -> list[str]:
    store = app[STORE]
    page = await store.scan("{conn_")
    index = await store.scan("{tenant_")
    return [e.key for e in page.entries] + [e.key for e in index.entries]


async def load_connection(app: web.Application, connection_id: str) -> Connection:
    raw = await app[CONTEXT].store.get(keys.connection(connection_id))
    assert raw is not None
    return Connection.model_validate_json(raw[0])


@pytest.mark.parametrize("connector", ["oidc-basic", "oidc-post", "oidc-jwt"])
async def test_connect_stores_a_working_connection(
    broker: web.Application,
    api: aiohttp.ClientSession,
    oidc: OidcPeer,
    connector: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connect_url = await start_connect(api, BROKER_URL, connector)
    before = time.time()
    connected = metric("broker_connect_callbacks_total", connector=connector, outcome="connected")
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
        code = query_of(callback)["code"]
        assert query_of(callback)["iss"] == oidc.issuer
        status, _, result = await follow_callback(session, callback)
    assert status == 302
    assert result["status"] == "connected"
    assert result["from"] == "broker"  # the dashboard's own query survives
    assert (
        metric("broker_connect_callbacks_total", connector=connector, outcome="connected")
        == connected + 1
    )

    view = await (await api.get(f"/v1/connections/{result['connection_id']}")).json()
    assert (view["status"], view["connector"], view["tenant_id"]) == (
        "active",
        connector,
        "tenant-a",
    )
    assert view["oauth"]["has_refresh_token"] is True
    assert "offline_access" in view["oauth"]["scopes"]
    assert oidc.token_requests("authorization_code") == 1

    conn = await load_connection(broker, result["connection_id"])
    assert conn.token is not None and conn.token.expires_at is not None
    assert before + 3600 - 5 <= conn.token.expires_at <= time.time() + 3600
    async with aiohttp.ClientSession() as plain:  # the stored token works at the provider
        me = await plain.get(
            f"{oidc.issuer}/me", headers={"Authorization": f"Bearer {conn.token.access_token}"}
        )
        assert me.status == 200
        assert (await me.json())["sub"] == "alice"
    for value in (code, conn.token.access_token, conn.token.refresh_token or "x" * 40):
        assert value not in caplog.text


async def test_state_is_one_time(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic")
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
        first = await follow_callback(session, callback)
        replay = await follow_callback(session, callback)
    assert first[2]["status"] == "connected"
    assert replay[0] == 400 and "unknown, used or expired state" in replay[1]
    assert oidc.token_requests("authorization_code") == 1
    assert len(await stored_connections(broker)) == 2  # the one record and its tenant index


async def test_two_flows_in_one_browser_both_complete(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    """Two tabs of one browser, each in its own flow: finishing the first must not throw away
    the second one's browser-binding cookie."""
    first_link = await start_connect(api, BROKER_URL, "oidc-basic")
    second_link = await start_connect(api, BROKER_URL, "oidc-basic")
    async with browser() as session:
        first = await to_callback(session, first_link, BROKER_URL)
        second = await to_callback(session, second_link, BROKER_URL)
        first_result = await follow_callback(session, first)
        second_result = await follow_callback(session, second)
        left = [c.key for c in session.cookie_jar if c.key.startswith("broker_oauth_")]
    assert (first_result[0], first_result[2]["status"]) == (302, "connected")
    assert (second_result[0], second_result[2].get("status")) == (302, "connected"), second_result[
        1
    ]
    assert first_result[2]["connection_id"] != second_result[2]["connection_id"]
    assert left == []  # each callback removed its own cookie
    assert oidc.token_requests("authorization_code") == 2


async def test_two_tabs_of_one_link_make_one_connection(
    broker: web.Application,
    api: aiohttp.ClientSession,
    oidc: OidcPeer,
    gated_token: GatedTokenRelay,
) -> None:
    """One connect link opened in two tabs: two flows (two states) of one session, both back
    at the broker at once. One code exchange, one connection; the other tab is told."""
    connect_url = await start_connect(api, BROKER_URL, "oidc-gated")
    async with browser() as session:
        callbacks = [await to_callback(session, connect_url, BROKER_URL) for _ in range(2)]
        gated_token.opened.clear()
        async with asyncio.timeout(30):  # a guard against a hang, not a timing assertion
            tabs = [asyncio.create_task(follow_callback(session, url)) for url in callbacks]
            await gated_token.arrived[0].wait()  # one tab is exchanging its code
            # the other tab is either answered already, or exchanging its code too (the bug)
            other_done = asyncio.create_task(asyncio.wait(tabs, return_when="FIRST_COMPLETED"))
            second_exchange = asyncio.create_task(gated_token.arrived[1].wait())
            await asyncio.wait([other_done, second_exchange], return_when="FIRST_COMPLETED")
            gated_token.opened.set()
            results = [await tab for tab in tabs]
            other_done.cancel()
            second_exchange.cancel()
    outcomes = sorted((r[2]["status"], r[2].get("error", "")) for r in results)
    assert outcomes == [("connected", ""), ("error", "session_in_use")], results
    assert gated_token.arrivals == 1
    assert oidc.token_requests("authorization_code") == 1
    assert len(await stored_connections(broker)) == 2  # one record and its tenant index
    assert (
        metric("broker_connect_callbacks_total", connector="oidc-gated", outcome="session_in_use")
        >= 1
    )


async def test_connect_link_dies_with_its_connection(
    api: aiohttp.ClientSession, broker: web.Application
) -> None:
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic")
    async with browser() as session:
        assert (await run_connect(session, connect_url))["status"] == "connected"
        resp = await session.get(connect_url, allow_redirects=False)
        assert resp.status == 404


async def test_unknown_state(broker: web.Application, oidc: OidcPeer) -> None:
    async with browser() as session:
        status, body, _ = await follow_callback(
            session,
            f"{BROKER_URL}/oauth/callback/oidc-basic?code=abc&state=never-issued&iss={oidc.issuer}",
        )
        missing = await follow_callback(session, f"{BROKER_URL}/oauth/callback/oidc-basic?code=abc")
    assert (status, missing[0]) == (400, 400)
    assert "unknown, used or expired state" in body
    assert oidc.token_requests("authorization_code") == 0
    assert await stored_connections(broker) == []


async def test_expired_state(
    broker: web.Application,
    api: aiohttp.ClientSession,
    oidc: OidcPeer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oauth_connect, "STATE_TTL", 1)
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic")
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
        await asyncio.sleep(1.3)
        status, body, _ = await follow_callback(session, callback)
    assert status == 400 and "unknown, used or expired state" in body
    assert oidc.token_requests("authorization_code") == 0
    assert await stored_connections(broker) == []


async def test_missing_browser_cookie(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic")
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
    async with browser() as other:  # an attacker's browser replaying a leaked callback URL
        status, body, _ = await follow_callback(other, callback)
    assert status == 400 and "did not start the flow" in body
    assert oidc.token_requests("authorization_code") == 0
    assert await stored_connections(broker) == []


async def test_callback_on_another_connectors_path(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic")
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
        status, body, _ = await follow_callback(
            session, callback.replace("/oidc-basic?", "/oidc-post?")
        )
    assert status == 400 and "another connector" in body
    assert oidc.token_requests("authorization_code") == 0
    assert await stored_connections(broker) == []


async def test_issuer_mismatch(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    connect_url = await start_connect(api, BROKER_URL, "oidc-wrong-iss")
    async with browser() as session:
        result = await run_connect(session, connect_url)
    assert result == {"from": "broker", "status": "error", "error": "issuer_mismatch"}
    assert oidc.token_requests("authorization_code") == 0
    assert await stored_connections(broker) == []


async def test_provider_access_denied(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic")
    counted = metric(
        "broker_connect_callbacks_total", connector="oidc-basic", outcome="access_denied"
    )
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
        params = query_of(callback)
        denied = (
            f"{BROKER_URL}/oauth/callback/oidc-basic?error=access_denied"
            f"&error_description=The+user+said+no&state={params['state']}&iss={params['iss']}"
        )
        status, _, result = await follow_callback(session, denied)
    assert status == 302
    assert (result["status"], result["error"]) == ("error", "access_denied")
    assert oidc.token_requests("authorization_code") == 0
    assert (
        metric("broker_connect_callbacks_total", connector="oidc-basic", outcome="access_denied")
        == counted + 1
    )
    assert await stored_connections(broker) == []


@pytest.mark.parametrize("mode", ["500", "html", "invalid-json", "no-token"])
async def test_broken_token_endpoint(
    broker: web.Application, api: aiohttp.ClientSession, bad_token: BadTokenEndpoint, mode: str
) -> None:
    bad_token.mode = mode
    connect_url = await start_connect(api, BROKER_URL, "oidc-badtoken")
    async with browser() as session:
        result = await run_connect(session, connect_url)
    assert bad_token.calls == 1
    assert result["status"] == "error"
    assert result["error"] in {"token_exchange_failed", "server_error"}
    assert await stored_connections(broker) == []


async def test_return_url_on_another_origin(
    api: aiohttp.ClientSession, broker: web.Application
) -> None:
    for url in (
        "https://evil.example.com/x",
        RETURN_ORIGIN + ".evil.com/x",
        "//evil.example.com",
        "javascript:alert(1)",
        f"https://user:pw@{RETURN_ORIGIN[8:]}/x",
    ):
        resp = await api.post(
            "/v1/connect-sessions",
            json={
                "tenant_id": "tenant-a",
                "connector": "oidc-basic",
                "return_url": url,
            },
        )
        assert resp.status == 400, url
        assert (await resp.json())["error"] == "invalid_request"
    assert await stored_connections(broker) == []


async def test_reconnect_keeps_the_id(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    async with browser() as session:
        first = await run_connect(session, await start_connect(api, BROKER_URL, "oidc-basic"))
    connection_id = first["connection_id"]
    before = await load_connection(broker, connection_id)
    connect_url = await start_connect(api, BROKER_URL, "oidc-basic", connection_id=connection_id)
    async with browser() as session:
        second = await run_connect(session, connect_url)
    assert second["connection_id"] == connection_id
    after = await load_connection(broker, connection_id)
    assert after.token is not None and before.token is not None
    assert after.token.access_token != before.token.access_token
    listed = await (await api.get("/v1/connections?tenant_id=tenant-a")).json()
    assert [c["id"] for c in listed["connections"]] == [connection_id]
    wrong_tenant = await api.post(
        "/v1/connect-sessions",
        json={
            "tenant_id": "tenant-b",
            "connector": "oidc-basic",
            "return_url": RETURN_URL,
            "connection_id": connection_id,
        },
    )
    assert wrong_tenant.status == 404


async def test_delete_revokes_at_the_provider(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, BROKER_URL, "oidc-basic"))
    conn = await load_connection(broker, result["connection_id"])
    resp = await api.delete(f"/v1/connections/{conn.id}")
    assert resp.status == 200
    assert (await resp.json())["revocation"]["status"] == "revoked"
    assert oidc.stats()["revocation"] == 1
    assert await stored_connections(broker) == [] or all(
        "tenant_" in k for k in await stored_connections(broker)
    )
    assert (await api.get(f"/v1/connections/{conn.id}")).status == 404
    async with aiohttp.ClientSession() as plain:  # the grant is dead at the provider
        assert conn.token is not None
        refresh = await plain.post(
            oidc.token_endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": conn.token.refresh_token or "",
            },
            headers={"Authorization": basic_authorization_header("basic-client", TRICKY_SECRET)},
        )
        assert refresh.status == 400


async def test_session_validation(api: aiohttp.ClientSession, broker: web.Application) -> None:
    cases = [
        ({"connector": "oidc-basic", "return_url": RETURN_URL}, 400),
        ({"tenant_id": "t", "connector": "nope", "return_url": RETURN_URL}, 404),
        ({"tenant_id": "t", "connector": "oidc-basic", "return_url": RETURN_URL, "x": 1}, 400),
        (
            {
                "tenant_id": "t",
                "connector": "oidc-basic",
                "return_url": RETURN_URL,
                "settings": {"a": 1},
            },
            400,
        ),
        (
            {
                "tenant_id": "t",
                "connector": "oidc-basic",
                "return_url": RETURN_URL,
                "connection_id": "conn_" + "0" * 26,
            },
            404,
        ),
        (
            {
                "tenant_id": "t",
                "connector": "stripe",
                "return_url": RETURN_URL,
                "settings": {"api_key": "x"},
            },
            400,
        ),
    ]
    for body, status in cases:
        resp = await api.post("/v1/connect-sessions", json=body)
        assert resp.status == status, (body, await resp.text())
        assert set(await resp.json()) == {"error", "message"}
    assert await stored_connections(broker) == []


async def test_a_failing_revocation_is_reported_not_hidden(
    broker: web.Application, api: aiohttp.ClientSession
) -> None:
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, BROKER_URL, "oidc-badrevoke"))
    cid = result["connection_id"]
    refused = await api.delete(f"/v1/connections/{cid}")
    assert refused.status == 502
    body = await refused.json()
    assert body["error"] == "revocation_failed" and "force=true" in body["message"]
    assert (await api.get(f"/v1/connections/{cid}")).status == 200  # kept: the only handle left
    forced = await api.delete(f"/v1/connections/{cid}?force=true")
    assert forced.status == 200
    assert (await forced.json())["revocation"]["status"] == "failed"
    assert (await api.get(f"/v1/connections/{cid}")).status == 404


async def test_a_secret_replaced_mid_flow_does_not_break_it(
    broker: web.Application, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    """The app's secret is read when the flow reaches the token endpoint, not when it starts;
    refreshes use the new one too."""
    connect_url = await start_connect(api, BROKER_URL, "oidc-rotating")
    async with browser() as session:
        callback = await to_callback(session, connect_url, BROKER_URL)
        resp = await api.put(
            "/v1/oauth-apps/oidc_rotating",
            json={
                "client_id": "rotating-client",
                "client_secret": ROTATED_SECRET,
            },
        )
        assert resp.status == 200
        status, _, result = await follow_callback(session, callback)
    assert (status, result["status"]) == (302, "connected")
    minted = await api.post("/v1/runtime-tokens", json={"connection_id": result["connection_id"]})
    runtime = {"Authorization": f"Bearer {(await minted.json())['token']}"}
    before = await (await api.get("/v1/runtime/oauth/access-token", headers=runtime)).json()
    refreshed = await api.post("/v1/runtime/oauth/refresh", headers=runtime)
    assert refreshed.status == 200
    assert (await refreshed.json())["access_token"] != before["access_token"]
    assert oidc.stats()["token_errors"] == {}


async def test_a_provider_specific_token_type(
    broker: web.Application, api: aiohttp.ClientSession, bad_token: BadTokenEndpoint
) -> None:
    """`bearerTokenTypes` in the manifest: Slack answers `token_type: bot`."""
    bad_token.mode = "bot"
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, BROKER_URL, "oidc-badtoken"))
    assert result["status"] == "connected"
    conn = await load_connection(broker, result["connection_id"])
    assert conn.token is not None and conn.token.token_type == "Bearer"
