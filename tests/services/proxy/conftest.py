"""Fixtures of the egress tests: the DNS zone and its server, an HTTPS provider on loopback
whose certificate names `*.egress.test`, and an `Egress` that asks that DNS server and trusts
that certificate's CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from broker.services.proxy import Egress
from tests.services.proxy.peers import DOMAIN, Tls, Zone, dns_server, tls_for

PUBLIC = "93.184.215.14"
"""A public address: the tests never get a connection through to it (the sandbox has no
route out, and the connect timeout is short)."""


@pytest.fixture
def zone() -> Zone:
    return Zone(
        {
            f"evil.{DOMAIN}": ["127.0.0.1"],
            f"named.{DOMAIN}": ["127.0.0.1"],
            f"public.{DOMAIN}": [PUBLIC],
            f"rebind.{DOMAIN}": [PUBLIC, "127.0.0.1"],
            f"private.{DOMAIN}": ["10.1.2.3"],
            f"metadata.{DOMAIN}": ["169.254.169.254"],
            f"v6.{DOMAIN}": ["::1"],
            f"mapped.{DOMAIN}": ["::ffff:127.0.0.1"],
        }
    )


@pytest.fixture
def nameserver(zone: Zone) -> Iterator[str]:
    with dns_server(zone) as address:
        yield address


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return tls_for(tmp_path, [f"*.{DOMAIN}", "127.0.0.1"])


class Provider:
    """An HTTPS API on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        if request.path.startswith("/redirect"):
            raise web.HTTPFound(request.query.get("to", "/v1/landed"))
        return web.json_response(
            {
                "host": request.host,
                "path": request.raw_path,
                "body": (await request.read()).decode(),
                "auth": request.headers.get("Authorization"),
            }
        )


@pytest.fixture
async def provider(tls: Tls) -> AsyncIterator[Provider]:
    peer = Provider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", peer.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server)
    await site.start()
    peer.port = runner.addresses[0][1]
    try:
        yield peer
    finally:
        await runner.cleanup()


@pytest.fixture
async def egress(nameserver: str, tls: Tls) -> AsyncIterator[Egress]:
    egress = Egress([nameserver], connect_timeout=0.5, ssl_context=tls.client)
    await egress.start()
    try:
        yield egress
    finally:
        await egress.close()
