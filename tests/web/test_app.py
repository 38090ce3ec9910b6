"""The HTTP surface at this stage: health, readiness, the catalog, and the error contract."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import admin

Client = TestClient[Any, Any]


async def test_healthz_answers_without_auth(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_reports_the_store(client: Client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["store"] == "ok"


async def test_connectors_need_the_admin_token(client: Client) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-000000"},
        {"Authorization": "Basic x"},
    ):
        resp = await client.get("/v1/connectors", headers=headers)
        assert resp.status == 401
        body = await resp.json()
        assert body["error"] == "unauthorized"
        assert set(body) == {"error", "message"}


async def test_connectors_lists_the_bundled_catalog(client: Client) -> None:
    resp = await client.get("/v1/connectors", headers=admin())
    assert resp.status == 200
    connectors = {c["key"]: c for c in (await resp.json())["connectors"]}
    stripe = connectors["stripe"]
    assert stripe["auth_mode"] == "api_key"
    assert stripe["settings_schema"]["properties"]["api_key"]["x-secret"] is True
    assert sum(c["auth_mode"] == "oauth" for c in connectors.values()) >= 10
    assert len(connectors) >= 16
    assert stripe["http"] == ["https://api.stripe.com/*"]
    assert stripe["http_auth"] == {"type": "bearer", "secret": "api_key"}
    assert stripe["rate_limit"] == {"requests": 100, "per_seconds": 1}
    postmark, hubspot = connectors["postmark"], connectors["hubspot"]
    assert postmark["http_auth"] == {
        "type": "header",
        "name": "X-Postmark-Server-Token",
        "secret": "server_token",
    }
    assert postmark["rate_limit"] is None
    assert hubspot["http_auth"] is None  # OAuth: the access token
    assert hubspot["rate_limit"] == {"requests": 100, "per_seconds": 10}


async def test_unknown_route_and_method_are_json_errors(client: Client) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    resp = await client.post("/healthz")
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
    # a templated route: the method is checked after the admin token, like every /v1 route
    resp = await client.put("/v1/connections/conn_0123456789abcdef0123", headers=admin())
    assert resp.status == 405
    assert "DELETE" in resp.headers["Allow"] and "PUT" not in resp.headers["Allow"]
    resp = await client.head("/healthz")  # GET routes answer HEAD
    assert resp.status == 200
    resp = await client.delete("/v1/nope", headers=admin())
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


async def test_oversized_body_is_413_json(client: Client) -> None:
    resp = await client.post("/v1/connectors", data=b"x" * (300 * 1024), headers=admin())
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"
