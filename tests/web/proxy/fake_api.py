"""A provider's business API, faked: one app listening on several loopback hosts (127.0.0.2,
127.0.0.3) on one port, recording every call it receives (host, method, path, query,
headers, body), so a test can say exactly which credential arrived where."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp import web
from multidict import CIMultiDict, MultiDict

HOSTS = ("127.0.0.2", "127.0.0.3")
CUSTOMERS = [
    {"id": "cus_A1", "object": "customer", "name": "Ada", "email": "ada@example.com"},
    {"id": "cus_B2", "object": "customer", "name": "Bob", "email": "bob@example.com"},
]


@dataclass
class Received:
    host: str
    method: str
    path: str
    query: MultiDict[str]
    headers: CIMultiDict[str]
    body: bytes


class FakeApi:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse_tokens: set[str] = set()
        """Bearer tokens answered 401 (a token the provider revoked early); `*`: all."""
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/v1/customers", self.customers)
        self.app.router.add_route("*", "/echo", self.echo)
        self.app.router.add_route("*", "/redirect", self.redirect)
        self.app.router.add_route("*", "/status/{status}", self.status)
        self.app.router.add_get("/big", self.big)
        self.app.router.add_get("/leaky", self.leaky)
        self.app.router.add_route("*", "/{tail:.*}", self.echo)

    def calls(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _record(self, request: web.Request) -> Received:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        got = Received(
            request.host.split(":")[0],
            request.method,
            request.path,
            MultiDict(request.query),
            CIMultiDict(request.headers),
            await request.read(),
        )
        self.received.append(got)
        if bearer in self.refuse_tokens or "*" in self.refuse_tokens:
            raise web.HTTPUnauthorized(
                text='{"error": "invalid_token"}', content_type="application/json"
            )
        return got

    async def customers(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {"object": "list", "url": "/v1/customers", "has_more": False, "data": CUSTOMERS}
        )

    async def echo(self, request: web.Request) -> web.Response:
        got = await self._record(request)
        return web.json_response(
            {"method": got.method, "path": got.path, "length": len(got.body)},
            headers={"X-Provider": "fake", "Connection": "keep-alive"},
        )

    async def redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def status(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {"error": "as asked"},
            status=int(request.match_info["status"]),
            headers={"Retry-After": "7"},
        )

    async def big(self, request: web.Request) -> web.StreamResponse:
        """`size` bytes, 64 KiB at a time, with a Content-Length (as a file export sends)."""
        await self._record(request)
        size = int(request.query["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def leaky(self, request: web.Request) -> web.Response:
        """A provider that echoes the credential it got, and sets a cookie."""
        got = await self._record(request)
        seen = " ".join(
            (
                got.headers.get("Authorization", ""),
                got.headers.get("X-Api-Key", ""),
                *got.query.getall("api_key", []),
            )
        )
        return web.json_response(
            {"ok": True},
            headers={
                "X-Debug-Credential": seen,
                "Set-Cookie": "session=abc; Path=/",
                "X-Provider": "fake",
            },
        )


def free_port_on_all() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((HOSTS[0], 0))
            port = int(s.getsockname()[1])
        try:
            for host in HOSTS[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every fake host")


@asynccontextmanager
async def serve_fake(fake: FakeApi) -> AsyncIterator[int]:
    """`fake` on every host of HOSTS, one port: the port."""
    runner = web.AppRunner(fake.app, access_log=None)
    await runner.setup()
    port = free_port_on_all()
    for host in HOSTS:
        await web.TCPSite(runner, host, port).start()
    try:
        yield port
    finally:
        await asyncio.wait_for(runner.cleanup(), 10)


def fake_api_fixture() -> object:
    """A pytest fixture yielding (a started `FakeApi`, its port): `fake = fake_api_fixture()`."""

    async def fake() -> AsyncIterator[tuple[FakeApi, int]]:
        api = FakeApi()
        async with serve_fake(api) as port:
            yield api, port

    return pytest.fixture(name="fake")(fake)
