"""OAuth app registrations: sealed, redacted on read, per-tenant overrides, bad input refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.helpers import admin

Client = TestClient[Any, Any]
SECRET = "p@ss:w+rd%2F&x-CANARY-41e3"


def pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


async def test_put_get_redacted(client: Client, tmp_path: Path) -> None:
    resp = await client.put(
        "/v1/oauth-apps/xero_app",
        json={"client_id": "abc", "client_secret": SECRET},
        headers=admin(),
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["client_id"] == "abc" and body["client_secret"] == "********"
    got = await (await client.get("/v1/oauth-apps/xero_app", headers=admin())).json()
    assert got == body
    assert SECRET not in str(got)
    for file in tmp_path.glob("broker.db*"):
        assert SECRET.encode() not in file.read_bytes()


async def test_tenant_override_is_separate(client: Client) -> None:
    await client.put("/v1/oauth-apps/xero_app", json={"client_id": "default"}, headers=admin())
    await client.put(
        "/v1/oauth-apps/xero_app", json={"client_id": "own", "tenant_id": "t1"}, headers=admin()
    )
    default = await (await client.get("/v1/oauth-apps/xero_app", headers=admin())).json()
    own = await (await client.get("/v1/oauth-apps/xero_app?tenant_id=t1", headers=admin())).json()
    assert (default["client_id"], own["client_id"], own["tenant_id"]) == ("default", "own", "t1")
    missing = await client.get("/v1/oauth-apps/xero_app?tenant_id=t2", headers=admin())
    assert missing.status == 404


async def test_private_keys(client: Client) -> None:
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())):
        resp = await client.put(
            "/v1/oauth-apps/jwt_app",
            json={"client_id": "c", "private_key": pem(key)},
            headers=admin(),
        )
        assert resp.status == 200
        assert (await resp.json())["private_key"] == "********"


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/oauth-apps/xero_app", {"client_secret": SECRET}, "client_id is required"),
        ("/v1/oauth-apps/xero_app", {"client_id": 5}, "client_id"),
        ("/v1/oauth-apps/xero_app", {"client_id": ""}, "client_id"),
        ("/v1/oauth-apps/xero_app", {"client_id": "a", "secret": SECRET}, "unknown field"),
        ("/v1/oauth-apps/xero_app", {"client_id": "a", "tenant_id": "{x}"}, "tenant_id"),
        ("/v1/oauth-apps/Bad%20Key", {"client_id": "a"}, "credential_key"),
        ("/v1/oauth-apps/xero_app", {"client_id": "a", "private_key": SECRET}, "PEM"),
        (
            "/v1/oauth-apps/xero_app",
            {"client_id": "a", "private_key": pem(rsa.generate_private_key(65537, 1024))},  # noqa: S505
            "2048",
        ),
    ],
)
async def test_bad_input(client: Client, path: str, body: dict[str, Any], fragment: str) -> None:
    resp = await client.put(path, json=body, headers=admin())
    assert resp.status == 400
    error = await resp.json()
    assert fragment in error["message"]
    assert SECRET not in error["message"]
    assert (await client.get("/v1/oauth-apps/xero_app", headers=admin())).status == 404


async def test_needs_admin(client: Client) -> None:
    resp = await client.put("/v1/oauth-apps/xero_app", json={"client_id": "a"})
    assert resp.status == 401
