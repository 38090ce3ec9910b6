"""Malformed requests get a 4xx that says why (JSON, or the 400 page on browser routes), never
a 500, and no log line carries a connect token."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.services.connect import sessions as connect_sessions
from tests.helpers import ADMIN_TOKEN, admin
from tests.web.test_connect_form import CANARY, new_link

Client = TestClient[Any, Any]
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"":' * 50_000 + b"1" + b"}" * 50_000  # under the body limit


async def assert_json_400(resp: Any) -> None:
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nnot a part header\r\n\r\nx\r\n--xyz--"),
        ("multipart/form-data", b"--xyz\r\n\r\n"),  # no boundary at all
        ("multipart/form-data; boundary=xyz", b"garbage with no delimiter"),
        ("application/x-www-form-urlencoded; charset=x-no-such-charset", b"api_key=abc"),
        ("application/x-www-form-urlencoded; charset=utf-8", b"api_key=\xff\xfe\xfa"),
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--\r\n",
        ),
    ],
)
async def test_a_malformed_form_is_the_400_page(
    client: Client, caplog: pytest.LogCaptureFixture, content_type: str, body: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    path = await new_link(client)
    resp = await client.post(path, data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "text/html"
    assert 'data-error="invalid_request"' in await resp.text()
    token = path.rsplit("/", 1)[1]
    assert token not in caplog.text
    # the link still works: a bad body changed nothing
    done = await client.post(path, data={"api_key": CANARY}, allow_redirects=False)
    assert done.status == 303


@pytest.mark.parametrize("settings", [None, [], "x", 3])
async def test_connect_session_settings_must_be_an_object(client: Client, settings: Any) -> None:
    created = await client.post(
        "/v1/connections",
        headers=admin(),
        json={"tenant_id": "tenant-f", "connector": "stripe", "settings": {"api_key": CANARY}},
    )
    assert created.status == 201
    connection_id = (await created.json())["id"]
    for extra in ({}, {"connection_id": connection_id}):
        resp = await client.post(
            "/v1/connect-sessions",
            headers=admin(),
            json={
                "tenant_id": "tenant-f",
                "connector": "stripe",
                "return_url": "http://127.0.0.1:8080/done",
                "settings": settings,
                **extra,
            },
        )
        await assert_json_400(resp)
        assert "settings" in (await resp.json())["message"]


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/connect-sessions"),
        ("POST", "/v1/connections"),
        ("PUT", "/v1/oauth-apps/some_app"),
        ("PATCH", "/v1/connections/conn_00000000000000000000000000/settings"),
        ("POST", "/v1/runtime-tokens"),
    ],
)
async def test_deeply_nested_json_is_a_400(
    client: Client, method: str, path: str, body: bytes
) -> None:
    resp = await client.request(
        method, path, data=body, headers={**admin(), "Content-Type": "application/json"}
    )
    await assert_json_400(resp)


async def test_an_unexpected_error_logs_no_connect_token(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    path = await new_link(client)
    token = path.rsplit("/", 1)[1]

    async def broken(*_: object) -> None:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(connect_sessions, "load", broken)
    for method in ("GET", "POST"):
        resp = await client.request(method, path, data={"api_key": CANARY})
        assert resp.status == 500
    assert "unhandled error on GET /connect/{token}" in caplog.text
    assert token not in caplog.text
    assert CANARY not in caplog.text


async def test_json_in_an_unknown_charset_is_a_400(client: Client) -> None:
    resp = await client.post(
        "/v1/connect-sessions",
        data=b'{"tenant_id": "t"}',
        headers={**admin(), "Content-Type": "application/json; charset=x-no-such-charset"},
    )
    await assert_json_400(resp)


@pytest.mark.parametrize(
    "raw",
    [
        f"GET /v1/connectors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\0\r\n\r\n",
        f"GET /v1/connectors/{ADMIN_TOKEN}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["header", "request-line"],
)
async def test_an_unparseable_request_is_a_client_error_in_the_log_without_its_values(
    client: Client, caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    # found by the contract fuzzer: aiohttp logged the parser's message, which quotes the
    # offending line (here a bearer token), at ERROR with a traceback
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(raw.encode())
    answer = await reader.read()
    writer.close()
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert ADMIN_TOKEN not in caplog.text
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "unparseable request" in caplog.text


@pytest.mark.parametrize("piece", ["%0A", "%0D%0A", "%E2%80%A8", "%1B[31m"])
async def test_a_path_cannot_add_a_line_to_the_log(
    client: Client, caplog: pytest.LogCaptureFixture, piece: str
) -> None:
    # found by the contract fuzzer: the access log wrote the decoded path, so `%0A` in it
    # started a forged line
    caplog.set_level(logging.DEBUG)
    resp = await client.get(f"/v1/connections/conn_x{piece}2026-01-01 INFO forged", headers=admin())
    assert resp.status == 404
    logged = [r.getMessage() for r in caplog.records]
    assert any("/v1/connections/{connection_id}" in m for m in logged)  # the route, never the path
    assert all(m.isprintable() for m in logged), logged


async def test_the_brokers_own_errors_say_so_in_a_header(client: Client) -> None:
    # the runtime SDK tells a broker refusal from a provider answer on the proxy by it
    for path, headers, code in (
        ("/v1/runtime/secrets/api_key", {"Authorization": "Bearer nope"}, "unauthorized"),
        ("/v1/connections/conn_missing", admin(ADMIN_TOKEN), "not_found"),
    ):
        resp = await client.get(path, headers=headers)
        assert resp.headers["Broker-Error"] == code == (await resp.json())["error"]
