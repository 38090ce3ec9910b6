"""Request limits: body and header sizes, the per-request time limit, and /readyz once a
shutdown began."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker.config import Settings
from broker.web import request_guard
from broker.web.deadlines import Deadlines
from broker.web.state import DEADLINES, SETTINGS, SHUTDOWN
from tests.helpers import ADMIN_TOKEN, admin, broker_client, served

Client = TestClient[Any, Any]
CANARY = "hdr-canary-" + "7" * 12


async def raw(client: Client, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` as is; the status line and the body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], body


async def test_the_body_limit_is_a_setting(make_settings: Callable[..., Settings]) -> None:
    async with broker_client(make_settings(max_body_bytes=2048)) as client:
        body = {"tenant_id": "t", "connector": "stripe", "settings": {"pad": "x" * 2100}}
        resp = await client.post("/v1/connections", json=body, headers=admin())
        assert resp.status == 413
        assert (await resp.json())["error"] == "payload_too_large"
        body["settings"] = {"pad": "x" * 1000}
        resp = await client.post("/v1/connections", json=body, headers=admin())
        assert resp.status == 400  # read and judged: not a stripe setting


async def test_an_oversized_header_is_431_json_without_its_value(
    make_settings: Callable[..., Settings],
) -> None:
    async with broker_client(make_settings(max_header_bytes=2048)) as client:
        big = f"Authorization: Bearer {CANARY}{'x' * 3000}\r\n".encode()
        status, body = await raw(
            client,
            b"GET /v1/connectors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + big + b"\r\n",
        )
        assert status.endswith(b" 431 Request Header Fields Too Large"), status
        assert (await _json(body))["error"] == "headers_too_large"
        assert CANARY.encode() not in body
        # under the limit: served
        fine = f"Authorization: Bearer {ADMIN_TOKEN}\r\nX-Pad: {'x' * 1500}\r\n".encode()
        status, _ = await raw(
            client,
            b"GET /v1/connectors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fine + b"\r\n",
        )
        assert status.endswith(b" 200 OK"), status
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
        status, body = await raw(
            client, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + many + b"\r\n"
        )
        assert status.endswith(b" 431 Request Header Fields Too Large"), status


async def test_an_unparseable_request_is_400_json_without_its_value(client: Client) -> None:
    status, body = await raw(
        client,
        f"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: {CANARY}\0\r\n\r\n".encode(),
    )
    assert status.endswith(b" 400 Bad Request"), status
    assert await _json(body) == {
        "error": "invalid_request",
        "message": "the request is not valid HTTP/1.1",
    }


async def test_an_unparseable_request_still_gets_a_request_id(client: Client) -> None:
    # the OpenAPI document promises X-Request-Id on every answer (found by the contract
    # fuzzer: a malformed Transfer-Encoding never reaches the request guard)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b'PATCH /v1/runtime/proxy/0/0/0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "\r\n'
        b"Connection: close\r\n\r\n"
    )
    head = (await reader.read()).partition(b"\r\n\r\n")[0].decode()
    writer.close()
    assert head.split(" ")[1] == "400", head
    ids = [line for line in head.split("\r\n") if line.lower().startswith("x-request-id:")]
    assert len(ids) == 1 and len(ids[0].split(":", 1)[1].strip()) >= 16, head


async def _json(body: bytes) -> dict[str, Any]:
    found = json.loads(body)
    assert set(found) == {"error", "message"}
    return dict(found)


async def test_a_request_over_its_time_limit_is_503_and_changes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    # the runtime's testConnection route answers after the limit: the connection is not made
    release = asyncio.Event()

    async def slow_check(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    runtime = web.Application()
    runtime.router.add_post("/{tail:.*}", slow_check)
    async with served(runtime) as runtime_url:
        settings = make_settings(request_timeout=0.3, runtime_url=runtime_url)
        async with broker_client(settings) as client:
            started = time.monotonic()
            resp = await client.post(
                "/v1/connections",
                headers=admin(),
                json={"tenant_id": "t1", "connector": "stripe", "settings": {"api_key": "sk_1"}},
            )
            assert resp.status == 503, await resp.text()
            assert (await resp.json())["error"] == "timeout"
            assert time.monotonic() - started < 3
            release.set()
            listed = await client.get("/v1/connections?tenant_id=t1", headers=admin())
            assert (await listed.json())["connections"] == []
            # the connection's task is fine: the next request on it is served
            assert (await client.get("/healthz")).status == 200


async def test_the_time_limit_ends_where_a_streamed_answer_starts(
    make_settings: Callable[..., Settings],
) -> None:
    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(4):
            await asyncio.sleep(0.2)
            await resp.write(b"part ")
        await resp.write_eof()
        return resp

    async def stuck(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app[SETTINGS] = make_settings()
    app[DEADLINES] = deadlines = Deadlines(0.3)
    app.router.add_get("/streamed", request_guard.handled(streamed))
    app.router.add_get("/stuck", request_guard.handled(stuck))
    watchdog = asyncio.create_task(deadlines.run())
    try:
        async with served(app) as url, aiohttp.ClientSession() as session:
            async with session.get(f"{url}/streamed") as resp:
                assert resp.status == 200 and await resp.read() == b"part " * 4
            async with session.get(f"{url}/stuck") as resp:
                assert resp.status == 503 and (await resp.json())["error"] == "timeout"
    finally:
        watchdog.cancel()
    assert len(deadlines) == 0


async def test_readiness_turns_503_when_a_shutdown_begins(client: Client) -> None:
    assert (await client.get("/readyz")).status == 200
    client.app[SHUTDOWN].begin()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["error"] == "shutting_down"
    assert (await client.get("/healthz")).status == 200
