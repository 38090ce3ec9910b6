"""The egress proxy's test bench: the fake provider API on 127.0.0.2 and 127.0.0.3, API-key
connectors pointing at it (one per credential placement), and a broker over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.config import Settings
from tests.e2e.harness import write_connectors
from tests.helpers import admin, broker_client
from tests.web.proxy.fake_api import FakeApi, fake_api_fixture

Client = TestClient[Any, Any]
CANARY = "sk_test_PROXYCANARY_5f4dcc3b5aa7"
"""The API key every test connection holds: it must reach the fake provider exactly where
the manifest says, and nowhere else (no log, audit entry, metric or answer to the runtime)."""
ACCOUNT = "acct-42"
PASSWORD_CANARY = "pw_PROXYCANARY_e99a18c428cb"

AUTHS: dict[str, dict[str, Any]] = {
    "px-bearer": {"type": "bearer", "secret": "api_key"},
    "px-basic": {"type": "basic", "username": "account", "password": "api_key"},
    "px-basic-user": {"type": "basic", "username": "api_key"},
    "px-header": {"type": "header", "name": "X-Api-Key", "secret": "api_key"},
    "px-query": {"type": "query", "name": "api_key", "secret": "api_key"},
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


EXPECTED = {
    "px-bearer": ("Authorization", f"Bearer {CANARY}"),
    "px-basic": ("Authorization", basic(ACCOUNT, CANARY)),
    "px-basic-user": ("Authorization", basic(CANARY, "")),
    "px-header": ("X-Api-Key", CANARY),
}
"""Where each connector but px-query puts the canary key: (header name, value)."""


def api_key_manifest(
    key: str, port: int, auth: dict[str, Any] | None, **connection: Any
) -> dict[str, Any]:
    if auth is not None:
        connection["httpAuth"] = auth
    return {
        "key": key,
        "name": key,
        "provider": "fake",
        "kind": "source",
        "version": "1.0.0",
        "permissions": {
            "http": [f"http://127.0.0.2:{port}/*", f"http://127.0.0.3:{port}/allowed/*"],
            "secrets": {},
        },
        "connection": {
            "settingsSchema": {
                "type": "object",
                "required": ["api_key"],
                "properties": {
                    "api_key": {"type": "string", "x-secret": True},
                    "account": {"type": "string"},
                },
            },
            **connection,
        },
    }


fake = fake_api_fixture()


@pytest.fixture
def connectors(tmp_path: Path, fake: tuple[FakeApi, int]) -> Path:
    port = fake[1]
    manifests = [api_key_manifest(key, port, auth) for key, auth in AUTHS.items()]
    manifests.append(
        api_key_manifest(
            "px-budget",
            port,
            AUTHS["px-bearer"],
            rateLimit={"requests": 3, "perSeconds": 3600},
        )
    )
    manifests.append(api_key_manifest("px-none", port, None))
    return write_connectors(tmp_path / "connectors", manifests)


@pytest.fixture
def proxy_settings(
    make_settings: Callable[..., Settings], connectors: Path
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return make_settings(connectors_dirs=str(connectors), **overrides)

    return make


@pytest.fixture
async def broker(proxy_settings: Callable[..., Settings]) -> AsyncIterator[Client]:
    async with broker_client(proxy_settings(proxy_max_body_bytes=1024 * 1024)) as client:
        yield client


async def runtime_token_for(
    client: Client, connector: str, settings: dict[str, Any] | None = None
) -> str:
    """A new connection of `connector` holding the canary key, and a runtime token for it."""
    resp = await client.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "tenant-a",
            "connector": connector,
            "settings": settings or {"api_key": CANARY, "account": ACCOUNT},
        },
    )
    assert resp.status == 201, await resp.text()
    conn_id = (await resp.json())["id"]
    resp = await client.post("/v1/runtime-tokens", headers=admin(), json={"connection_id": conn_id})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["token"])


def runtime(token: str, target: str | None = None, **headers: str) -> dict[str, str]:
    out = {"Authorization": f"Bearer {token}", **headers}
    if target is not None:
        out["Broker-Target"] = target
    return out
