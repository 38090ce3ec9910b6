"""Malformed requests get a 4xx that says why (JSON, or the 400 page on browser routes), never
a 500, and no log line carries a connect token."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.services.connect import sessions as connect_sessions
from tests.helpers import admin
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
