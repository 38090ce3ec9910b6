"""The official `stripe` Python package, pointed at the proxy's path form with a runtime
token as its API key, lists customers: the Stripe connector's calls work through the broker
without the runtime ever holding the key (DESIGN 2, the connector guide's Stripe connector)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from aiohttp.test_utils import TestClient

from broker.config import Settings
from tests.helpers import broker_client
from tests.web.proxy.conftest import CANARY, runtime_token_for
from tests.web.proxy.fake_api import CUSTOMERS, FakeApi

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def stripe_broker(
    make_settings: Any, tmp_path: Path, fake: tuple[FakeApi, int]
) -> AsyncIterator[TestClient[Any, Any]]:
    # the bundled Stripe manifest as it is (its httpAuth included), listing the fake API
    manifest = json.loads((ROOT / "connectors/stripe/manifest.json").read_text())
    manifest["key"] = "stripe-local"
    manifest["permissions"]["http"] = [f"http://127.0.0.2:{fake[1]}/*"]
    folder = tmp_path / "connectors" / "stripe-local"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    settings: Settings = make_settings(connectors_dirs=str(tmp_path / "connectors"))
    async with broker_client(settings) as client:
        yield client


async def test_the_stripe_sdk_lists_customers_through_the_proxy(
    stripe_broker: TestClient[Any, Any], fake: tuple[FakeApi, int]
) -> None:
    api, port = fake
    token = await runtime_token_for(
        stripe_broker, "stripe-local", {"api_key": CANARY, "webhook_secret": "whsec_x"}
    )
    base = str(stripe_broker.make_url(f"/v1/runtime/proxy/http/127.0.0.2:{port}"))
    client = stripe.StripeClient(token, base_addresses={"api": base}, max_network_retries=0)
    # the SDK is synchronous: off the loop the broker runs on
    customers = await asyncio.to_thread(client.v1.customers.list, {"limit": 2})
    assert [c.id for c in customers.data] == [c["id"] for c in CUSTOMERS]
    assert customers.data[0].name == "Ada"
    (got,) = api.received
    assert got.path == "/v1/customers" and got.query["limit"] == "2"
    assert got.headers["Authorization"] == f"Bearer {CANARY}"
    assert token not in str(got.headers)
    assert "Stripe-Version" in got.headers  # the SDK's own headers go through


async def test_the_connector_guide_s_stripe_calls_go_through_broker_target(
    stripe_broker: TestClient[Any, Any], fake: tuple[FakeApi, int]
) -> None:
    """The guide's test-connection (`GET /v1/balance`) and customers sync
    (`GET /v1/customers?limit=100`), made as `Http.get` would make them through the broker."""
    api, port = fake
    token = await runtime_token_for(
        stripe_broker, "stripe-local", {"api_key": CANARY, "webhook_secret": "whsec_x"}
    )
    for target in ("/v1/balance", "/v1/customers?limit=100"):
        resp = await stripe_broker.get(
            "/v1/runtime/proxy",
            headers={
                "Authorization": f"Bearer {token}",
                "Broker-Target": f"http://127.0.0.2:{port}{target}",
            },
        )
        assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [c["id"] for c in body["data"]] == [c["id"] for c in CUSTOMERS]
    assert body["has_more"] is False
    assert [(r.path, r.query.get("limit")) for r in api.received] == [
        ("/v1/balance", None),
        ("/v1/customers", "100"),
    ]
    assert {r.headers["Authorization"] for r in api.received} == {f"Bearer {CANARY}"}
