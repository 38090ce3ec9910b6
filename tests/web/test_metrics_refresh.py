"""Refreshes against a real token endpoint on loopback, seen on GET /metrics: the outcome
counted and the provider's time observed per connector, a wait on another holder of the
refresh lock timed, a dead grant counted as needs_reauth; no token on /metrics."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.config import Settings
from broker.store import keys
from broker.web.state import CONTEXT
from tests.e2e.harness import write_connectors
from tests.helpers import admin, broker_client, metric, served

CONNECTOR = "cc-metrics"
DEAD = "invalid_grant"
CLIENT_SECRET = "cs_CANARY_metrics_refresh_1b2c3d4e5f"
DESCRIPTION_CANARY = "grant gone CANARY_description_0f1e2d"

Client = TestClient[Any, Any]


class TokenEndpoint:
    """Answers client-credentials grants with a new canary token, or `invalid_grant`."""

    def __init__(self) -> None:
        self.dead = False
        self.issued: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        await request.read()
        if self.dead:
            dead = {"error": "invalid_grant", "error_description": DESCRIPTION_CANARY}
            return web.json_response(dead, status=400)
        self.issued.append("at_CANARY_" + secrets.token_hex(16))
        return web.json_response(
            {"access_token": self.issued[-1], "token_type": "Bearer", "expires_in": 3600}
        )


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[TokenEndpoint, str]]:
    provider = TokenEndpoint()
    async with served(provider.app) as base:
        yield provider, f"{base}/token"


@pytest.fixture
async def client(
    endpoint: tuple[TokenEndpoint, str], tmp_path: Path, make_settings: Callable[..., Settings]
) -> AsyncIterator[Client]:
    manifest = {
        "key": CONNECTOR,
        "name": CONNECTOR,
        "provider": "local",
        "kind": "source",
        "version": "1.0.0",
        "connection": {
            "settingsSchema": {"type": "object", "properties": {}},
            "oauth": {
                "type": "client_credentials",
                "tokenUrlTemplate": endpoint[1],
                "scopes": ["read"],
                "client": {"credentialKey": "cc_metrics"},
            },
        },
    }
    folder = write_connectors(tmp_path / "connectors", [manifest])
    settings = make_settings(
        connectors_dirs=str(folder), refresher=False, events_worker=False, refresh_lock_ttl=15
    )
    async with broker_client(settings) as test_client:
        app = {"client_id": "cc-client", "client_secret": CLIENT_SECRET}
        resp = await test_client.put("/v1/oauth-apps/cc_metrics", headers=admin(), json=app)
        assert resp.status == 200
        yield test_client


async def connect(client: Client) -> tuple[str, str]:
    """(connection id, runtime token); creating it fetches the first token."""
    body = {"tenant_id": "t-metrics", "connector": CONNECTOR, "settings": {}}
    created = await client.post("/v1/connections", headers=admin(), json=body)
    assert created.status == 201, await created.text()
    connection_id = (await created.json())["id"]
    minted = await client.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": connection_id}
    )
    return connection_id, (await minted.json())["token"]


async def force_refresh(client: Client, runtime: str) -> int:
    resp = await client.post(
        "/v1/runtime/oauth/refresh", headers={"Authorization": f"Bearer {runtime}"}
    )
    return resp.status


def provider_calls(call: str) -> float:
    return metric("broker_provider_request_duration_seconds_count", connector=CONNECTOR, call=call)


async def test_a_refresh_counts_its_outcome_and_times_the_provider(
    client: Client, endpoint: tuple[TokenEndpoint, str]
) -> None:
    before_calls = provider_calls("client_credentials")
    _, runtime = await connect(client)
    assert provider_calls("client_credentials") == before_calls + 1  # the first token
    ok = metric("broker_token_refreshes_total", connector=CONNECTOR, outcome="ok")
    timed = metric("broker_token_refresh_duration_seconds_count", connector=CONNECTOR)
    assert await force_refresh(client, runtime) == 200
    assert metric("broker_token_refreshes_total", connector=CONNECTOR, outcome="ok") == ok + 1
    assert metric("broker_token_refresh_duration_seconds_count", connector=CONNECTOR) == timed + 1
    assert provider_calls("client_credentials") == before_calls + 2
    text = await (await client.get("/metrics")).text()
    for value in (*endpoint[0].issued, CLIENT_SECRET, runtime):
        assert value not in text


async def test_a_wait_on_another_holder_of_the_lock_is_timed(client: Client) -> None:
    connection_id, runtime = await connect(client)
    waits = ("broker_refresh_lock_wait_seconds_count", "acquired")
    before = metric(waits[0], connector=CONNECTOR, outcome=waits[1])
    # a holder that died: its lock runs out by itself, and the waiter takes it over
    store = client.app[CONTEXT].store
    assert await store.acquire(keys.refresh_lock(connection_id), 1.0) is not None
    assert await force_refresh(client, runtime) == 200
    assert metric(waits[0], connector=CONNECTOR, outcome=waits[1]) == before + 1
    waited = metric("broker_refresh_lock_wait_seconds_sum", connector=CONNECTOR, outcome="acquired")
    assert waited > 0


def reauth_counts() -> tuple[float, float]:
    """needs_reauth for a dead grant, and the provider error that told it."""
    return (
        metric(
            "broker_connections_needs_reauth_total", connector=CONNECTOR, reason="invalid_grant"
        ),
        metric(
            "broker_provider_errors_total",
            connector=CONNECTOR,
            call="client_credentials",
            error=DEAD,
        ),
    )


async def test_a_dead_grant_is_counted_as_needs_reauth(
    client: Client, endpoint: tuple[TokenEndpoint, str]
) -> None:
    _, runtime = await connect(client)
    before = reauth_counts()
    endpoint[0].dead = True
    assert await force_refresh(client, runtime) == 409
    assert reauth_counts() == (before[0] + 1, before[1] + 1)
    text = await (await client.get("/metrics")).text()
    for value in (DESCRIPTION_CANARY, "CANARY", CLIENT_SECRET, runtime):
        assert value not in text
