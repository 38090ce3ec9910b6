"""Constants and small helpers the tests import (conftest.py is not importable as a module)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.web.access_log import AccessLogger
from broker.web.app import create_app

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def broker_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The broker app on a real loopback socket, with the access logger `broker serve` runs
    (assertions on captured logs then hold for production logging too)."""
    server = TestServer(create_app(settings))
    await server.start_server(access_log_class=AccessLogger)
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
