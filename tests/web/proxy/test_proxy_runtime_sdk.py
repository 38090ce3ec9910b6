"""`broker.runtime.Http` against the real egress proxy: the provider's answers come back as
responses whatever their status, the broker's refusals as the SDK's errors (told apart by
the Broker-Error header), and the key the proxy injects is one the runtime cannot read."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from broker.runtime import BrokerClient, EgressDenied, NotGranted
from broker.services.relay import headers as relay_headers
from tests.web.proxy.conftest import CANARY, Client, runtime_token_for
from tests.web.proxy.fake_api import FakeApi

Fake = tuple[FakeApi, int]


async def test_the_python_sdk_calls_the_provider_through_the_proxy(
    broker: Client, fake: Fake
) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-bearer")
    async with BrokerClient(str(broker.make_url("")), token, retries=0) as client:
        res = await client.http.get(f"http://127.0.0.2:{port}/v1/customers", params={"limit": "2"})
        assert res.ok and [c["id"] for c in res.body["data"]] == ["cus_A1", "cus_B2"]
        (got,) = api.received
        assert got.headers["Authorization"] == f"Bearer {CANARY}" and got.query["limit"] == "2"

        failed = await client.http.post(f"http://127.0.0.2:{port}/status/503", json={"a": 1})
        assert (failed.status, failed.ok, failed.body) == (503, False, {"error": "as asked"})
        assert len(api.received) == 2  # a provider's 503 is its answer: not retried

        with pytest.raises(EgressDenied) as denied:
            await client.http.get(f"http://127.0.0.3:{port}/not-allowed")
        assert denied.value.status == 403 and len(api.received) == 2
        with pytest.raises(NotGranted):
            await client.secrets.get("api_key")  # httpAuth's key, not granted to the runtime
    assert CANARY not in str(denied.value)


def test_a_providers_own_broker_error_header_never_reaches_the_runtime() -> None:
    # the SDKs take Broker-Error for the broker's refusal: a provider must not forge one
    provider = CIMultiDict({"Broker-Error": "egress_denied", "X-Provider": "fake"})
    returned = relay_headers.to_runtime(provider, [])
    assert "Broker-Error" not in returned and returned["X-Provider"] == "fake"
