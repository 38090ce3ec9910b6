"""API-key connections over HTTP: validated, tested, sealed; nothing stored on failure."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.services import connections, records
from broker.store import keys
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.helpers import admin, broker_client, served

Client = TestClient[Any, Any]
CANARY = "sk_test_CANARY_d41d8cd98f00"
WEBHOOK_CANARY = "whsec_CANARY_0cc175b9c0f1"


class FakeRuntime:
    """The platform runtime's testConnection route (the platform is not part of this project)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post(
            "/api/v1/extensions/{tenant}/{connector}/routes/setup/test_connection", self.handle
        )

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append((request.path, body))
        key = body.get("api_key", "")
        if key.startswith("sk_test_CANARY"):
            return web.json_response({"ok": True})
        if key.startswith("sk_test_echo"):
            return web.json_response({"message": f"Invalid API key {key}"}, status=400)
        if key.startswith("sk_test_boom"):
            return web.json_response({"message": "crash"}, status=500)
        if key.startswith("sk_test_deep"):  # JSON deeper than the decoder goes
            return web.Response(body=b"[" * 50_000, status=400, content_type="application/json")
        if key.startswith("sk_test_huge"):
            return web.json_response({"message": "x" * 1024 * 1024}, status=400)
        return web.json_response({"message": "Invalid API key", "status": 401}, status=400)


@pytest.fixture
async def runtime() -> AsyncIterator[tuple[FakeRuntime, str]]:
    fake = FakeRuntime()
    async with served(fake.app) as url:
        yield fake, url


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings],
    runtime: tuple[FakeRuntime, str],
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Client]:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(runtime_url=runtime[1], webhook_base_url="https://hooks.example.com")
    async with broker_client(settings) as client:
        yield client
    for canary in (CANARY, WEBHOOK_CANARY, "sk_test_echo_SECRET", "CANARY_rotated"):
        assert canary not in caplog.text


def stripe(api_key: object = CANARY, **extra: Any) -> dict[str, Any]:
    return {
        "tenant_id": "tenant-a",
        "connector": "stripe",
        "settings": {"api_key": api_key, "webhook_secret": WEBHOOK_CANARY, **extra},
    }


async def test_create_read_list(
    api: Client, runtime: tuple[FakeRuntime, str], tmp_path: Path
) -> None:
    resp = await api.post("/v1/connections", json=stripe(), headers=admin())
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["id"].startswith("conn_")
    assert created["status"] == "active"
    assert created["settings"] == {"api_key": "********", "webhook_secret": "********"}
    assert created["webhook_url"] == (
        "https://hooks.example.com/api/v1/extensions/tenant-a/stripe/routes/webhooks/stripe"
        f"?connection_id={created['id']}"
    )
    assert created["setup_instructions"]
    assert created["created_at"].endswith("Z")
    ((path, sent),) = runtime[0].calls
    assert path == "/api/v1/extensions/tenant-a/stripe/routes/setup/test_connection"
    assert sent["api_key"] == CANARY

    got = await (await api.get(f"/v1/connections/{created['id']}", headers=admin())).json()
    assert got == created
    listed = await (await api.get("/v1/connections?tenant_id=tenant-a", headers=admin())).json()
    assert [c["id"] for c in listed["connections"]] == [created["id"]]
    other = await (await api.get("/v1/connections?tenant_id=tenant-b", headers=admin())).json()
    assert other == {"connections": []}
    for raw in (await resp.text(), str(got), str(listed)):
        assert CANARY not in raw and WEBHOOK_CANARY not in raw
    for file in tmp_path.glob("broker.db*"):
        data = file.read_bytes()
        assert CANARY.encode() not in data and WEBHOOK_CANARY.encode() not in data


async def nothing_stored(api: Client) -> None:
    listed = await (await api.get("/v1/connections?tenant_id=tenant-a", headers=admin())).json()
    assert listed == {"connections": []}


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        (stripe(api_key="sk_test_wrong"), 400, "connection_test_failed", "Invalid API key"),
        (stripe(api_key="sk_test_boom"), 502, "runtime_unavailable", "500"),
        (stripe(api_key="sk_test_deep"), 400, "connection_test_failed", "no message"),
        (stripe(api_key="sk_test_huge"), 502, "runtime_unavailable", "larger than"),
        (
            {**stripe(), "settings": {"webhook_secret": "x"}},
            400,
            "invalid_settings",
            "missing required setting 'api_key'",
        ),
        (stripe(api_key=""), 400, "invalid_settings", "$.settings.api_key"),
        (stripe(api_key=12345), 400, "invalid_settings", "must be of type string"),
        (stripe(region="eu"), 400, "invalid_settings", "unknown setting 'region'"),
        ({**stripe(), "settings": [CANARY]}, 400, "invalid_settings", "JSON object"),
        ({**stripe(), "tenant_id": "bad tenant/../"}, 400, "invalid_request", "tenant_id"),
        ({**stripe(), "tenant_id": None}, 400, "invalid_request", "tenant_id"),
        ({**stripe(), "connector": "nope"}, 404, "not_found", "nope"),
        ({**stripe(), "connector": "xero"}, 400, "invalid_request", "OAuth"),
        ({**stripe(), "extra": 1}, 400, "invalid_request", "unknown field"),
    ],
)
async def test_bad_input_changes_nothing(
    api: Client, body: dict[str, Any], status: int, code: str, fragment: str
) -> None:
    resp = await api.post("/v1/connections", json=body, headers=admin())
    assert resp.status == status
    error = await resp.json()
    assert error["error"] == code
    assert fragment in error["message"]
    assert CANARY not in error["message"] and WEBHOOK_CANARY not in error["message"]
    await nothing_stored(api)


async def test_a_runtime_echoing_the_key_is_scrubbed(api: Client) -> None:
    key = "sk_test_echo_SECRET_9f86d081"
    resp = await api.post("/v1/connections", json=stripe(api_key=key), headers=admin())
    assert resp.status == 400
    assert key not in await resp.text()
    await nothing_stored(api)


async def test_not_json_and_not_an_object(api: Client) -> None:
    for data in (b"{nope", b"[1,2]", b""):
        resp = await api.post("/v1/connections", data=data, headers=admin())
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"
    await nothing_stored(api)


async def test_unknown_connection_ids(api: Client) -> None:
    for cid in ("conn_" + "0" * 26, "nope", "{conn_x}"):
        resp = await api.get(f"/v1/connections/{cid}", headers=admin())
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"
    resp = await api.get("/v1/connections", headers=admin())
    assert resp.status == 400


async def test_runtime_down_is_502_and_nothing_stored(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(runtime_url="http://127.0.0.1:9")
    async with TestClient(TestServer(create_app(settings))) as client:
        resp = await client.post("/v1/connections", json=stripe(), headers=admin())
        assert resp.status == 502
        assert (await resp.json())["error"] == "runtime_unavailable"
        await nothing_stored(client)


async def test_patch_settings_is_tested_before_it_replaces(
    api: Client, runtime: tuple[FakeRuntime, str], tmp_path: Path
) -> None:
    created = await (await api.post("/v1/connections", json=stripe(), headers=admin())).json()
    url = f"/v1/connections/{created['id']}/settings"
    new_key = "sk_test_CANARY_rotated_77a1"

    rejected = await api.patch(
        url, json={"settings": {"api_key": "sk_test_wrong"}}, headers=admin()
    )
    assert rejected.status == 400
    assert (await rejected.json())["error"] == "connection_test_failed"
    same = await (await api.get(f"/v1/connections/{created['id']}", headers=admin())).json()
    assert same["settings_version"] == 1

    resp = await api.patch(url, json={"settings": {"api_key": new_key}}, headers=admin())
    assert resp.status == 200
    body = await resp.json()
    assert body["settings_version"] == 2
    assert body["settings"] == {"api_key": "********", "webhook_secret": "********"}
    assert runtime[0].calls[-1][1] == {"api_key": new_key, "webhook_secret": WEBHOOK_CANARY}

    removed = await api.patch(url, json={"settings": {"webhook_secret": None}}, headers=admin())
    assert (await removed.json())["settings"] == {"api_key": "********"}
    for bad, code in (
        ({"settings": {"api_key": None}}, "invalid_settings"),
        ({"settings": {"nope": "x"}}, "invalid_settings"),
        ({"settings": {}}, "invalid_request"),
        ({"settings": "x"}, "invalid_request"),
        ({"api_key": "x"}, "invalid_request"),
    ):
        resp = await api.patch(url, json=bad, headers=admin())
        assert resp.status == 400, bad
        assert (await resp.json())["error"] == code
    final = await (await api.get(f"/v1/connections/{created['id']}", headers=admin())).json()
    assert final["settings_version"] == 3
    missing = await api.patch(
        "/v1/connections/conn_" + "1" * 26 + "/settings",
        json={"settings": {"api_key": new_key}},
        headers=admin(),
    )
    assert missing.status == 404
    for file in tmp_path.glob("broker.db*"):
        assert new_key.encode() not in file.read_bytes()


async def test_versions_and_rollback(api: Client) -> None:
    created = await (await api.post("/v1/connections", json=stripe(), headers=admin())).json()
    base = f"/v1/connections/{created['id']}/settings"
    for i in range(3):
        resp = await api.patch(
            base, json={"settings": {"api_key": f"sk_test_CANARY_v{i + 2}"}}, headers=admin()
        )
        assert resp.status == 200
    versions = (await (await api.get(f"{base}/versions", headers=admin())).json())["versions"]
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert versions[0]["current"] and not versions[1]["current"]
    assert versions[1]["names"] == ["api_key", "webhook_secret"]
    assert CANARY not in str(versions)
    # the current version dates from when it replaced the last one, not the record's last write
    assert versions[0]["created_at"] == versions[1]["replaced_at"]
    ctx = api.app[CONTEXT]
    conn, version = await connections.get(ctx, created["id"])
    later = conn.model_copy(update={"updated_at": conn.updated_at + 3600})  # a refresh, say
    await records.save(ctx.store, keys.connection(conn.id), later, version)
    again = (await (await api.get(f"{base}/versions", headers=admin())).json())["versions"]
    assert again[0]["created_at"] == versions[0]["created_at"]

    back = await api.post(f"{base}/rollback", json={"version": 1}, headers=admin())
    assert back.status == 200
    assert (await back.json())["settings_version"] == 5
    minted = await (
        await api.post("/v1/runtime-tokens", json={"connection_id": created["id"]}, headers=admin())
    ).json()
    read = await api.get(
        "/v1/runtime/secrets/api_key", headers={"Authorization": f"Bearer {minted['token']}"}
    )
    assert await read.json() == {"name": "api_key", "value": CANARY, "version": 5}

    for body, status in (
        ({"version": 99}, 404),
        ({"version": "1"}, 400),
        ({}, 400),
        ({"version": True}, 400),
    ):
        resp = await api.post(f"{base}/rollback", json=body, headers=admin())
        assert resp.status == status, body
    audit = await (
        await api.get(
            f"/v1/audit?tenant_id=tenant-a&connection_id={created['id']}", headers=admin()
        )
    ).json()
    actions = {(e["action"], e["outcome"]) for e in audit["entries"]}
    assert {("settings.change", "ok"), ("settings.rollback", "ok")} <= actions


async def test_history_is_bounded(
    make_settings: Callable[..., Settings], runtime: tuple[FakeRuntime, str]
) -> None:
    settings = make_settings(runtime_url=runtime[1], settings_history=2)
    async with TestClient(TestServer(create_app(settings))) as client:
        created = await (
            await client.post("/v1/connections", json=stripe(), headers=admin())
        ).json()
        for i in range(4):
            await client.patch(
                f"/v1/connections/{created['id']}/settings",
                json={"settings": {"api_key": f"sk_test_CANARY_{i}"}},
                headers=admin(),
            )
        versions = await (
            await client.get(f"/v1/connections/{created['id']}/settings/versions", headers=admin())
        ).json()
        assert [v["version"] for v in versions["versions"]] == [5, 4, 3]
