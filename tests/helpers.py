"""Constants and small helpers the tests import (conftest.py is not importable as a module)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from broker import metrics
from broker.config import Settings
from broker.logs import LogFormat, LogLevel, configure_logging
from broker.web.app import create_app
from broker.web.server import BrokerRunner

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)

Framing = Literal["chunked", "length"]


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class BrokerTestServer(TestServer):
    """aiohttp's test server, run by the runner `broker serve` runs (`BrokerRunner`: the
    access logger, header limits, JSON answers to unparseable requests), so assertions on
    answers and captured logs hold for production too."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return BrokerRunner(self.app, **kwargs)


@asynccontextmanager
async def broker_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The broker app on a real loopback socket, served as `broker serve` serves it."""
    server = BrokerTestServer(create_app(settings))
    await server.start_server()
    async with TestClient(server) as client:
        yield client


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """A fake peer (a runtime, a provider's API) on a free loopback port: its base URL."""
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def send_in_pieces(
    request: web.Request,
    body: bytes,
    *,
    framing: Framing,
    status: int = 200,
    pieces: int = 4,
    pause: float = 0.05,
) -> web.StreamResponse:
    """Answer `body` a few bytes at a time, pausing between writes, so the client sees the
    start of the body (`{"access_token":"ey`) well before the rest: chunked transfer
    encoding, or a Content-Length with the body trickling in after it."""
    resp = web.StreamResponse(
        status=status, headers={"Content-Type": "application/json", "Cache-Control": "no-store"}
    )
    if framing == "chunked":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = len(body)
    await resp.prepare(request)
    step = max(1, -(-len(body) // pieces))
    for start in range(0, len(body), step):
        await resp.write(body[start : start + step])
        await asyncio.sleep(pause)  # the next piece leaves in another TCP segment
    await resp.write_eof()
    return resp


def metric(name: str, **labels: str) -> float:
    """A sample of this process's metrics as GET /metrics shows it (0 if absent): `name` is
    the sample's, e.g. `broker_token_refreshes_total` or `..._seconds_count`."""
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def background_errors(loop: str) -> float:
    """`broker_background_errors_total{loop=...}` as GET /metrics shows it (0 if absent)."""
    return metric("broker_background_errors_total", loop=loop)


@contextmanager
def broker_logging(
    log_format: LogFormat = "json", level: LogLevel = "DEBUG"
) -> Iterator[io.StringIO]:
    """Logging as `broker serve` configures it, into a buffer; pytest's own capture handlers
    and levels are put back afterwards."""
    root = logging.getLogger()
    handlers, old_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(log_format, level, stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(old_level)
        logging.captureWarnings(False)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a JSON log, parsed: a line that is not one JSON object fails here."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    return lines
