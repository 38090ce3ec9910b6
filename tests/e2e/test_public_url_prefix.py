"""A broker behind a reverse proxy that serves it under a path (`BROKER_PUBLIC_URL` =
`http://proxy/broker`): both Connect flows work through the proxy, as a browser sees it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web

from broker.config import Settings
from broker.web.app import create_app
from tests.e2e.harness import (
    RETURN_ORIGIN,
    TRICKY_SECRET,
    browser,
    free_port,
    oauth_manifest,
    peer_client,
    query_of,
    run_connect,
    serve,
    start_connect,
    write_connectors,
)
from tests.helpers import admin
from tests.peers.oidc import OidcPeer, oidc_peer_fixture

BROKER_PORT = free_port()
PROXY_PORT = free_port()
PREFIX = "/broker"
PUBLIC_URL = f"http://127.0.0.1:{PROXY_PORT}{PREFIX}"
CANARY = "sk_test_PREFIX_CANARY_1f3870be"
# what a proxy must not pass on (RFC 9110 7.6.1), plus what aiohttp sets itself
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "prefix-client",
                "client_secret_basic",
                PUBLIC_URL,
                "oidc-prefix",
                client_secret=TRICKY_SECRET,
            )
        ],
        "pkceRequired": True,
    },
    scope="module",
)


def prefix_stripping_proxy(prefix: str, upstream: str) -> web.Application:
    """What nginx's `location /broker/ { proxy_pass http://broker/; }` does: paths under
    `prefix` go upstream without it; everything else is not ours (404). Redirects, cookies
    and bodies pass through untouched."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True)

    async def forward(request: web.Request) -> web.StreamResponse:
        if not request.raw_path.startswith(prefix + "/"):
            raise web.HTTPNotFound(text="not under the proxied prefix")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with http.request(
            request.method,
            upstream + request.raw_path.removeprefix(prefix),
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            answer = web.Response(status=resp.status, body=body)
            for name, value in resp.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    answer.headers.add(name, value)
            return answer

    async def close(_: web.Application) -> None:
        await http.close()

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", forward)
    app.on_cleanup.append(close)
    return app


@pytest.fixture
async def proxied_broker(
    oidc: OidcPeer, tmp_path: Path, make_settings: Callable[..., Settings]
) -> AsyncIterator[None]:
    folder = write_connectors(tmp_path / "connectors", [oauth_manifest("oidc-prefix", oidc)])
    settings = make_settings(
        public_url=PUBLIC_URL, allowed_return_origins=RETURN_ORIGIN, connectors_dirs=str(folder)
    )
    upstream = f"http://127.0.0.1:{BROKER_PORT}"
    async with (
        serve(create_app(settings), BROKER_PORT),
        serve(prefix_stripping_proxy(PREFIX, upstream), PROXY_PORT),
        aiohttp.ClientSession() as api,
    ):
        resp = await api.put(
            f"{PUBLIC_URL}/v1/oauth-apps/oidc_prefix",
            json={"client_id": "prefix-client", "client_secret": TRICKY_SECRET},
            headers=admin(),
        )
        assert resp.status == 200
        yield


@pytest.fixture
async def api() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_oauth_connect_through_a_path_prefix(
    proxied_broker: None, api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    # through the interstitial: its button posts back through the proxy too
    connect_url = await start_connect(api, PUBLIC_URL, "oidc-prefix", skip_interstitial=False)
    assert connect_url.startswith(PUBLIC_URL + "/connect/")
    async with browser() as session:
        result = await run_connect(session, connect_url)
        left = [c.key for c in session.cookie_jar if c.key.startswith("broker_oauth_")]
    assert result["status"] == "connected", result
    assert left == []  # the callback's delete reached the cookie it set
    assert oidc.token_requests("authorization_code") == 1


async def test_api_key_form_through_a_path_prefix(
    proxied_broker: None, api: aiohttp.ClientSession
) -> None:
    connect_url = await start_connect(api, PUBLIC_URL, "stripe")
    async with browser() as session:
        page = await session.get(connect_url)
        assert page.status == 200
        html = await page.text()
        action = re.search(r'<form method="post" action="([^"]*)"', html)
        assert action is not None
        target = urljoin(connect_url, action.group(1))
        assert target == connect_url  # where the browser posts: back through the proxy
        # and what the page loads comes through the proxy as well
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]*)"', html)
        assert stylesheet is not None
        css = await session.get(urljoin(connect_url, stylesheet.group(1)))
        assert css.status == 200 and css.content_type == "text/css"
        done = await session.post(target, data={"api_key": CANARY}, allow_redirects=False)
    assert done.status == 303, await done.text()
    assert query_of(done.headers["Location"])["status"] == "connected"
