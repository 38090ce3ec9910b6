"""End-to-end plumbing: a broker on a real port, OAuth connectors pointing at the oidc peer,
a misbehaving token endpoint, and a scripted browser run through the whole Connect flow."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.web.access_log import AccessLogger
from tests.helpers import Framing, admin, send_in_pieces
from tests.peers.oidc import OidcPeer, drive_browser

RETURN_ORIGIN = "https://dashboard.example.com"
RETURN_URL = RETURN_ORIGIN + "/connections/done?from=broker"
TRICKY_SECRET = "p@ss:w+rd%2F&x"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oauth_manifest(key: str, peer: OidcPeer, **oauth: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "authorizationUrlTemplate": peer.authorization_endpoint,
        "tokenUrlTemplate": peer.token_endpoint,
        "revocationUrlTemplate": peer.revocation_endpoint,
        "scopes": ["openid", "offline_access"],
        "client": {"credentialKey": key.replace("-", "_")},
        "authorizationParams": {"prompt": "consent"},
        "issuer": peer.issuer,
    }
    block.update(oauth)
    return {
        "key": key,
        "name": key,
        "provider": "oidc-provider",
        "kind": "source",
        "version": "1.0.0",
        "permissions": {"http": [peer.issuer + "/*"]},
        "connection": {"settingsSchema": {"type": "object", "properties": {}}, "oauth": block},
    }


def client_credentials_manifest(key: str, peer: OidcPeer) -> dict[str, Any]:
    """A machine-to-machine connector: no browser, no authorization endpoint, no issuer."""
    return oauth_manifest(
        key,
        peer,
        type="client_credentials",
        scopes=[],
        authorizationParams={},
        issuer=None,
        authorizationUrlTemplate=None,
    )


def write_connectors(folder: Path, manifests: list[dict[str, Any]]) -> Path:
    for manifest in manifests:
        (folder / manifest["key"]).mkdir(parents=True, exist_ok=True)
        (folder / manifest["key"] / "manifest.json").write_text(json.dumps(manifest))
    return folder


def peer_client(
    client_id: str, method: str, broker_url: str, connector: str, **extra: Any
) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": method,
        "redirect_uris": [f"{broker_url}/oauth/callback/{connector}"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types": ["code"],
        "scope": "openid offline_access",
        **extra,
    }


@asynccontextmanager
async def serve(app: web.Application, port: int) -> AsyncIterator[str]:
    # the broker's own access logger, as `broker serve` runs it: the assertions on captured
    # logs then hold for production logging too
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server(access_log_class=AccessLogger)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()


@asynccontextmanager
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def start_connect(
    api: aiohttp.ClientSession, broker_url: str, connector: str, **body: Any
) -> str:
    """A connect link. Its session skips the broker's pages unless told otherwise: the
    scripted browser checks the redirects (the pages are Chromium's to test)."""
    resp = await api.post(
        f"{broker_url}/v1/connect-sessions",
        headers=admin(),
        json={
            "tenant_id": "tenant-a",
            "connector": connector,
            "return_url": RETURN_URL,
            "skip_interstitial": True,
            **body,
        },
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["connect_url"])


async def run_connect(session: aiohttp.ClientSession, connect_url: str) -> dict[str, str]:
    """Browser from the connect link to the dashboard; returns the query the dashboard got."""
    location = await drive_browser(
        session, connect_url, stop_when=lambda u: u.startswith(RETURN_ORIGIN)
    )
    return query_of(location)


async def to_callback(session: aiohttp.ClientSession, connect_url: str, broker_url: str) -> str:
    """Browser from the connect link to (not into) the broker's callback."""
    return await drive_browser(
        session, connect_url, stop_when=lambda u: u.startswith(broker_url + "/oauth/callback/")
    )


async def follow_callback(
    session: aiohttp.ClientSession, callback_url: str
) -> tuple[int, str, dict[str, str]]:
    """GET the callback as the browser would: (status, body, return_url query if redirected)."""
    async with session.get(callback_url, allow_redirects=False) as resp:
        body = await resp.text()
        query = query_of(resp.headers["Location"]) if resp.status == 302 else {}
        return resp.status, body, query


async def works_at_the_provider(peer: OidcPeer, access_token: str) -> bool:
    """Whether the provider accepts `access_token` (its userinfo endpoint answers 200)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{peer.issuer}/me", headers={"Authorization": f"Bearer {access_token}"}) as r,
    ):
        return r.status == 200


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def call_upstream(request: web.Request, upstream: str, body: bytes) -> tuple[int, bytes]:
    """Send a token request on to the real endpoint: (status, body) of its answer."""
    headers = {
        k: v
        for k, v in request.headers.items()
        if k.lower() in ("authorization", "content-type", "accept")
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(upstream, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


async def forward(request: web.Request, upstream: str, body: bytes) -> web.Response:
    """Pass a token request on to the real endpoint (for proxies that misbehave on purpose)."""
    status, answer = await call_upstream(request, upstream, body)
    return web.Response(body=answer, status=status, content_type="application/json")


class ChunkingRelay:
    """A token endpoint in front of the real one that re-sends each answer a few bytes at a
    time with pauses (`framing`: chunked, or a Content-Length), as some providers and
    corporate proxies do. `relayed` counts the requests it passed on."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.framing: Framing = "chunked"
        self.relayed = 0
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.StreamResponse:
        self.relayed += 1
        status, answer = await call_upstream(request, self.upstream, await request.read())
        return await send_in_pieces(request, answer, framing=self.framing, status=status, pieces=6)
