"""A token endpoint at its worst, for tests/e2e/test_provider_faults.py: `/token/<fault>` in
front of the real one, answering each refresh with its fault once armed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from tests.e2e.harness import forward

CANARY = "at_CANARY_6512bd43d9caa6e02c990b0a82652dca"
"""The access token in the answers cut short: it must reach no log line and no error."""
RETRY_AFTER = 30
SLOW = 8.0
"""Seconds the slow fault takes at most: far past any provider call's time limit."""


class FaultyTokenEndpoint:
    """`/token/<fault>` in front of the real token endpoint: code exchanges pass, and so do
    refreshes until the fault is armed; then each refresh gets the fault instead, and the
    peer never sees it (nothing is rotated that the broker could lose)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.armed: set[str] = set()
        self.refreshes: Counter[str] = Counter()
        """Refresh requests each fault answered."""
        self.closing = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/token/{fault}", self.token)
        self.answers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
            "slow": self.slow,
            "gateway": self.gateway,
            "throttled": self.throttled,
            "truncated": self.truncated,
            "reset": self.reset,
            "html": self.html,
            "halfjson": self.halfjson,
        }

    async def token(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = request.match_info["fault"]
        if fault not in self.armed or b"grant_type=refresh_token" not in body:
            return await forward(request, self.upstream, body)
        self.refreshes[fault] += 1
        return await self.answers[fault](request)

    async def slow(self, request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):  # the broker gave up long before
            await asyncio.wait_for(self.closing.wait(), SLOW)
        return web.json_response({"error": "temporarily_unavailable"}, status=503)

    async def gateway(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=502, text="<html><h1>502 Bad Gateway</h1></html>", content_type="text/html"
        )

    async def throttled(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, text="slow down", headers={"Retry-After": str(RETRY_AFTER)})

    async def html(self, request: web.Request) -> web.StreamResponse:
        page = "<html><form action='/login'>Sign in to continue</form></html>"
        return web.Response(text=page, content_type="text/html")

    async def halfjson(self, request: web.Request) -> web.StreamResponse:
        # a whole HTTP answer whose JSON document stops halfway through the token
        return web.Response(text='{"access_token": "' + CANARY, content_type="application/json")

    async def truncated(self, request: web.Request) -> web.StreamResponse:
        # Content-Length promises the whole answer, the connection closes after half of it
        whole = b'{"access_token": "' + CANARY.encode() + b'", "token_type": "Bearer"}'
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(whole)
        await resp.prepare(request)
        await resp.write(whole[: len(whole) // 2])
        assert request.transport is not None
        request.transport.close()
        return resp

    async def reset(self, request: web.Request) -> web.StreamResponse:
        # SO_LINGER 0: closing sends a TCP RST instead of a FIN
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        return web.Response()
