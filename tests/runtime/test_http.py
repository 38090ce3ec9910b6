"""`broker.runtime.Http` beyond the shared cases (sdk/behaviour-cases.json): what it refuses
to send, request bodies and queries, and the test runtime's `FakeHttp`."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from broker.runtime import BrokerClient, EgressDenied, Http, NotGranted, Secrets
from broker.testing import connector_test_runtime
from tests.helpers import served

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "rt-canary-http-test-0123456789"


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"Authorization": "Bearer sk_mine"}},
        {"headers": {"broker-target": "https://evil.example/"}},
        {"headers": {"Host": "evil.example"}},
        {"json": {}, "data": "x"},
    ],
)
async def test_http_refuses_to_carry_a_credential_or_the_brokers_headers(
    options: dict[str, object],
) -> None:
    async with BrokerClient("http://127.0.0.1:9", TOKEN) as client:
        with pytest.raises(ValueError, match=r"broker|json or data"):
            await client.http.get("https://api.stripe.com/v1/x", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["/v1/relative", "ftp://x/y", "https://user:pw@api.stripe.com/"])
async def test_http_needs_an_absolute_url_without_credentials(url: str) -> None:
    async with BrokerClient("http://127.0.0.1:9", TOKEN) as client:
        with pytest.raises(ValueError, match="URL"):
            await client.http.get(url)


async def test_json_bodies_and_params_are_sent_as_the_proxy_expects() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/v1/runtime/proxy", proxy)
    async with served(app) as url, BrokerClient(url, TOKEN) as client:
        url1 = "https://api.example.com/v1/items/1"
        await client.http.patch(url1, json={"name": "Ada"}, params={"expand": "all"})
        await client.http.get("https://api.example.com/v1/items?page=2", params={"q": "a b"})
    (method, headers, body), (_, get_headers, _) = seen
    assert method == "PATCH" and headers["Content-Type"] == "application/json"
    assert headers["Broker-Target"] == url1 + "?expand=all" and body == b'{"name": "Ada"}'
    assert get_headers["Broker-Target"] == "https://api.example.com/v1/items?page=2&q=a+b"


async def test_the_test_runtime_reads_the_manifest_and_serves_canned_answers() -> None:
    manifest = ROOT / "sdk" / "typescript" / "examples" / "stripe" / "manifest.json"
    with connector_test_runtime(manifest=manifest, secrets={"api_key": "sk_1"}) as rt:
        rt.http.get_once(url="https://api.stripe.com/v1/balance", body="second")
        rt.http.get_once(status=200, body={"data": [{"id": "cus_1"}]})
        rt.http.post_once(status=402, body={"error": {"code": "card_declined"}})
        res = await Http.get("https://api.stripe.com/v1/customers", params={"limit": "100"})
        assert res.ok and res.body == {"data": [{"id": "cus_1"}]}
        assert (await Http.get("https://api.stripe.com/v1/balance")).text == "second"
        declined = await Http.post("https://api.stripe.com/v1/charges", data="amount=100")
        assert (declined.status, declined.ok) == (402, False)
        with pytest.raises(EgressDenied):
            await Http.get("https://files.stripe.com/v1/files")
        with pytest.raises(NotGranted):
            await Secrets.get("api_key")  # the example grants it to the proxy only
        with pytest.raises(AssertionError, match="no canned answer for DELETE"):
            await Http.delete("https://api.stripe.com/v1/customers/cus_1")
    assert rt.http.urls == [
        "https://api.stripe.com/v1/customers?limit=100",
        "https://api.stripe.com/v1/balance",
        "https://api.stripe.com/v1/charges",
        "https://files.stripe.com/v1/files",
        "https://api.stripe.com/v1/customers/cus_1",
    ]
    assert rt.http.calls[2].body == b"amount=100" and rt.http.pending == []
    assert rt.calls_of("secret") == ["api_key"]
