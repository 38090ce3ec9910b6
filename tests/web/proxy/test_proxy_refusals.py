"""Every refusal of the egress proxy, each answered before the provider sees anything it
should not: a target outside permissions.http, a redirect leaving it, a body over the
limit, the connection's rate budget; and what is not the broker's to refuse (the
provider's own 429 and 5xx) passes through with its Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yarl

from tests.helpers import broker_client, metric
from tests.web.proxy.conftest import CANARY, Client, runtime, runtime_token_for
from tests.web.proxy.fake_api import FakeApi

Fake = tuple[FakeApi, int]


async def refused(resp: Any, status: int, code: str) -> str:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"] == code
    assert CANARY not in str(body)
    return str(body["message"])


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.3:{port}/elsewhere",  # a listed host, an unlisted path
        "http://127.0.0.4:{port}/v1/x",  # an unlisted host
        "http://127.0.0.2:1/v1/x",  # an unlisted port
        "https://127.0.0.2:{port}/v1/x",  # an unlisted scheme
        "http://127.0.0.2:{port}/v1/../../admin/../../x",
        "http://user:pw@127.0.0.2:{port}/v1/x",
        "ftp://127.0.0.2/x",
        "/v1/relative",
    ],
)
async def test_a_target_outside_the_list_is_403(broker: Client, fake: Fake, target: str) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    before = metric("broker_proxy_refusals_total", connector="px-bearer", rule="target")
    resp = await broker.get("/v1/runtime/proxy", headers=runtime(token, target.format(port=port)))
    if target.startswith("http://127.0.0.2:{port}/v1/.."):
        # dot segments resolve to /x, inside 127.0.0.2's /*: what is checked is what is sent
        assert resp.status == 200
        assert api.received[-1].path == "/x"
        return
    await refused(resp, 403, "egress_denied")
    assert api.received == []
    assert metric("broker_proxy_refusals_total", connector="px-bearer", rule="target") == (
        before + 1
    )


async def test_bad_proxy_requests_are_400(broker: Client, fake: Fake) -> None:
    _, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    await refused(
        await broker.get("/v1/runtime/proxy", headers=runtime(token)), 400, "invalid_request"
    )
    resp = await broker.get(
        "/v1/runtime/proxy?limit=1",
        headers=runtime(token, f"http://127.0.0.2:{port}/echo"),
    )
    await refused(resp, 400, "invalid_request")
    resp = await broker.get(f"/v1/runtime/proxy/gopher/127.0.0.2:{port}/x", headers=runtime(token))
    await refused(resp, 400, "invalid_request")
    resp = await broker.get(f"/v1/runtime/proxy/http/127.0.0.2:{port}/x")
    await refused(resp, 401, "unauthorized")


async def test_a_redirect_leaving_the_list_is_403(broker: Client, fake: Fake) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    away = f"http://127.0.0.3:{port}/not-allowed"
    resp = await broker.get(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/redirect?to={away}", headers=runtime(token)
    )
    message = await refused(resp, 403, "egress_denied")
    assert message.startswith("redirect refused")
    assert [r.host for r in api.received] == ["127.0.0.2"]
    assert metric("broker_proxy_refusals_total", connector="px-bearer", rule="redirect") >= 1


@pytest.mark.parametrize("connector", ["px-bearer", "px-query", "px-header"])
async def test_a_redirect_to_another_listed_host_drops_the_credential(
    broker: Client, fake: Fake, connector: str
) -> None:
    api, port = fake
    token = await runtime_token_for(broker, connector)
    there = f"http://127.0.0.3:{port}/allowed/file?sig=abc"
    resp = await broker.get(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/redirect?to={there}&status=307",
        headers=runtime(token),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["path"] == "/allowed/file"
    first, second = api.received
    assert first.host == "127.0.0.2" and second.host == "127.0.0.3"
    assert CANARY in str(first.headers) + str(first.query)
    assert CANARY not in str(second.headers) + str(second.query)
    assert "Authorization" not in second.headers and token not in str(second.headers)
    assert second.query["sig"] == "abc"


async def test_a_redirect_on_the_same_host_keeps_the_credential(broker: Client, fake: Fake) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    resp = await broker.post(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/redirect?to=/v1/moved&status=303",
        headers=runtime(token),
        data=b"payload",
    )
    assert resp.status == 200
    _, second = api.received
    assert (second.method, second.path, second.body) == ("GET", "/v1/moved", b"")
    assert second.headers["Authorization"] == f"Bearer {CANARY}"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_provider_throttling_and_failures_pass_through(
    broker: Client, fake: Fake, status: int
) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    resp = await broker.post(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/status/{status}",
        headers=runtime(token),
        data=b"once",
    )
    assert resp.status == status
    assert resp.headers["Retry-After"] == "7"
    assert await resp.json() == {"error": "as asked"}
    assert len(api.received) == 1  # never retried by the broker


async def test_a_body_over_the_limit_is_413(broker: Client, fake: Fake) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo"
    big = b"x" * (1024 * 1024 + 1)
    await refused(
        await broker.post(url, headers=runtime(token), data=big), 413, "payload_too_large"
    )
    assert api.received == []

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536

    resp = await broker.post(url, headers=runtime(token), data=chunked())
    await refused(resp, 413, "payload_too_large")
    # under the limit, chunked or not, it goes through whole (beyond the 256 KiB of the
    # broker's own JSON routes)
    resp = await broker.put(url, headers=runtime(token), data=b"z" * 900_000)
    assert (await resp.json())["length"] == 900_000
    assert metric("broker_proxy_refusals_total", connector="px-bearer", rule="body_size") >= 2


async def test_the_rate_budget_answers_429_before_the_provider_would(
    broker: Client, fake: Fake
) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-budget")
    url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo"
    statuses = [(await broker.get(url, headers=runtime(token))).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await broker.get(url, headers=runtime(token))
    await refused(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    assert len(api.received) == 3
    # another connection of the same connector has its own budget
    other = await runtime_token_for(broker, "px-budget")
    assert (await broker.get(url, headers=runtime(other))).status == 200


async def test_a_provider_that_cannot_be_reached_is_502(proxy_settings: Any, fake: Fake) -> None:
    _, port = fake
    async with broker_client(proxy_settings()) as broker:
        token = await runtime_token_for(broker, "px-bearer")
        resp = await broker.get(
            "/v1/runtime/proxy", headers=runtime(token, f"http://127.0.0.2:{port + 1}/x")
        )
        if resp.status == 403:  # the port is not the listed one: refused before any connect
            return
        await refused(resp, 502, "provider_error")


async def test_a_path_with_a_newline_still_gets_a_json_answer(broker: Client) -> None:
    """Found by the contract fuzzer: `.` in a route pattern does not match a decoded `%0A`,
    so such a path fell past every route, the catch-all included, to aiohttp's text 404."""
    token = await runtime_token_for(broker, "px-bearer")
    base = str(broker.make_url(""))
    for path, status in (
        ("/v1/runtime/proxy/%14v/U/%C2%AE.%0A%23", 400),
        ("/nowhere/%0A", 404),
    ):
        url = yarl.URL(base + path, encoded=True)
        resp = await broker.session.get(url, headers=runtime(token))
        assert resp.status == status
        assert resp.content_type == "application/json"
        assert "X-Request-Id" in resp.headers
