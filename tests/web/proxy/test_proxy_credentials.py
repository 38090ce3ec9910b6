"""API-key connections through the egress proxy: each placement (bearer, basic, a header, a
query parameter) injects exactly the connection's credential and nothing else, in both the
header form and the path form; the runtime's own Authorization never reaches the provider,
and the key reaches no answer, log, audit entry or metric."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from broker import metrics
from broker.web.state import CONTEXT
from tests.helpers import admin
from tests.web.proxy.conftest import (
    ACCOUNT,
    CANARY,
    EXPECTED,
    PASSWORD_CANARY,
    Client,
    basic,
    runtime,
    runtime_token_for,
)
from tests.web.proxy.fake_api import FakeApi

Fake = tuple[FakeApi, int]


@pytest.mark.parametrize("connector", [*EXPECTED, "px-query"])
@pytest.mark.parametrize("form", ["header", "path"])
async def test_the_credential_goes_where_the_manifest_says(
    broker: Client, fake: Fake, connector: str, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api, port = fake
    token = await runtime_token_for(broker, connector)
    sent_headers = {"X-Trace": "t-1", "Cookie": "mine=1", "Accept": "application/json"}
    if form == "header":
        target = f"http://127.0.0.2:{port}/v1/things/th_9?limit=3&api_key=runtime-chosen"
        resp = await broker.get("/v1/runtime/proxy", headers=runtime(token, target, **sent_headers))
    else:
        resp = await broker.get(
            f"/v1/runtime/proxy/http/127.0.0.2:{port}/v1/things/th_9?limit=3&api_key=runtime-chosen",
            headers=runtime(token, **sent_headers),
        )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["path"] == "/v1/things/th_9"
    assert resp.headers["X-Provider"] == "fake"
    assert "X-Request-Id" in resp.headers
    (got,) = api.received
    assert got.host == "127.0.0.2"
    assert got.headers["X-Trace"] == "t-1"
    assert "Cookie" not in got.headers
    assert "Broker-Target" not in got.headers
    assert token not in str(got.headers) and token not in str(got.query)
    if connector == "px-query":
        assert got.query.getall("api_key") == [CANARY]  # the runtime's own pick is replaced
        assert "Authorization" not in got.headers
    else:
        name, value = EXPECTED[connector]
        assert got.headers.getall(name) == [value]
        assert got.query.getall("api_key") == ["runtime-chosen"]  # not a credential here
        others = {"Authorization", "X-Api-Key"} - {name}
        assert not others & set(got.headers)
    assert got.query["limit"] == "3"
    body = await resp.read()
    assert CANARY.encode() not in body and CANARY not in str(resp.headers)
    await broker.app[CONTEXT].audit.flush()
    assert CANARY not in caplog.text
    assert CANARY not in metrics.render().decode()


async def test_a_provider_echoing_the_credential_does_not_hand_it_to_the_runtime(
    broker: Client, fake: Fake
) -> None:
    api, port = fake
    for connector in ("px-bearer", "px-query", "px-header"):
        token = await runtime_token_for(broker, connector)
        resp = await broker.get(
            "/v1/runtime/proxy", headers=runtime(token, f"http://127.0.0.2:{port}/leaky")
        )
        assert resp.status == 200
        assert "X-Debug-Credential" not in resp.headers, api.received[-1].headers
        assert "Set-Cookie" not in resp.headers
        assert resp.headers["X-Provider"] == "fake"


async def test_the_runtime_cannot_read_the_key_the_proxy_uses(broker: Client) -> None:
    token = await runtime_token_for(broker, "px-bearer")
    resp = await broker.get("/v1/runtime/secrets/api_key", headers=runtime(token))
    assert resp.status == 403
    assert (await resp.json())["error"] == "not_granted"


async def test_a_basic_password_setting_is_secret_too(broker: Client, fake: Fake) -> None:
    api, port = fake
    token = await runtime_token_for(
        broker, "px-basic", {"api_key": PASSWORD_CANARY, "account": ACCOUNT}
    )
    resp = await broker.post(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo",
        headers=runtime(token, **{"Content-Type": "application/json"}),
        data=b'{"a": 1}',
    )
    assert resp.status == 200
    assert await resp.json() == {"method": "POST", "path": "/echo", "length": 8}
    (got,) = api.received
    assert got.headers["Authorization"] == basic(ACCOUNT, PASSWORD_CANARY)
    assert got.headers["Content-Type"] == "application/json"
    assert got.body == b'{"a": 1}'


async def test_every_call_is_audited_by_template_never_by_value(broker: Client, fake: Fake) -> None:
    _, port = fake
    token = await runtime_token_for(broker, "px-query")
    for customer in ("cus_N1ffr", "cus_Q2zz9"):
        resp = await broker.get(
            f"/v1/runtime/proxy/http/127.0.0.2:{port}/v1/customers/{customer}?email=a@b.c",
            headers=runtime(token),
        )
        assert resp.status == 200
    await broker.app[CONTEXT].audit.flush()
    resp = await broker.get("/v1/audit?tenant_id=tenant-a", headers=admin())
    entries = [e for e in (await resp.json())["entries"] if e["action"] == "proxy.request"]
    assert [(e["name"], e["outcome"], e["count"]) for e in entries] == [
        (f"GET 127.0.0.2:{port}/v1/customers/{{id}}", "200", 2)
    ]
    text = str(entries)
    assert "cus_N1ffr" not in text and "a@b.c" not in text and CANARY not in text
    sample = metrics.REGISTRY.get_sample_value(
        "broker_proxy_requests_total",
        {"connector": "px-query", "host": "127.0.0.2", "status": "200"},
    )
    assert sample is not None and sample >= 2


async def test_head_and_a_chunked_upload_go_through(broker: Client, fake: Fake) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-header")
    url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo"
    resp = await broker.head(url, headers=runtime(token))
    assert resp.status == 200
    assert await resp.read() == b""
    assert api.received[-1].method == "HEAD"

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"p" * 100_000

    resp = await broker.patch(url, headers=runtime(token), data=pieces())
    assert await resp.json() == {"method": "PATCH", "path": "/echo", "length": 500_000}
    assert api.received[-1].headers["X-Api-Key"] == CANARY


async def test_the_answer_keeps_the_provider_s_content_headers(broker: Client, fake: Fake) -> None:
    _, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    for size in (10, 200_000):  # read whole, and streamed
        resp = await broker.get(
            f"/v1/runtime/proxy/http/127.0.0.2:{port}/big?size={size}", headers=runtime(token)
        )
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Content-Length"] == str(size)
        assert len(await resp.read()) == size
    resp = await broker.get(f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo", headers=runtime(token))
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_a_rotated_key_is_used_at_once_and_a_deleted_connection_has_none(
    broker: Client, fake: Fake
) -> None:
    """Whatever is kept between calls (`relay.opened`, with a record cache; this broker's
    SQLite store has none: tests/services/relay/test_opened.py), a changed record is used
    at the next call and a deleted one refuses it."""
    api, port = fake
    token = await runtime_token_for(broker, "px-header")
    listed = await broker.get("/v1/connections?tenant_id=tenant-a", headers=admin())
    (conn,) = (await listed.json())["connections"]
    url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo"
    for _ in range(2):
        assert (await broker.get(url, headers=runtime(token))).status == 200
    assert api.received[-1].headers["X-Api-Key"] == CANARY
    resp = await broker.patch(
        f"/v1/connections/{conn['id']}/settings",
        headers=admin(),
        json={"settings": {"api_key": "sk_rotated"}},
    )
    assert resp.status == 200, await resp.text()
    assert (await broker.get(url, headers=runtime(token))).status == 200
    assert api.received[-1].headers["X-Api-Key"] == "sk_rotated"
    assert (await broker.delete(f"/v1/connections/{conn['id']}", headers=admin())).status == 200
    gone = await broker.get(url, headers=runtime(token))
    assert gone.status == 401, await gone.text()
    assert len(api.received) == 3
