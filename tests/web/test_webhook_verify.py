"""POST /v1/webhooks/verify: the broker verifies with the secret it keeps, spots replays, and
accepts the old secret for a while after a roll."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from aiohttp.test_utils import TestClient, TestServer

from broker import metrics
from broker.config import Settings
from broker.web.app import create_app
from tests.helpers import admin

Client = TestClient[Any, Any]
OLD = "whsec_CANARY_old_4d2f0a9b"
NEW = "whsec_CANARY_new_77c1e3aa"
BODY = json.dumps({"id": "evt_1", "type": "invoice.paid"}).encode()


def signed(body: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=at)
    return {"Stripe-Signature": str(header), **admin()}


async def stripe_connection(client: Client) -> str:
    resp = await client.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "t1",
            "connector": "stripe",
            "settings": {"api_key": "sk_test_x", "webhook_secret": OLD},
        },
    )
    return str((await resp.json())["id"])


async def verify(
    client: Client, cid: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/v1/webhooks/verify?connection_id={cid}", data=body, headers=headers)
    return resp.status, await resp.json()


async def test_valid_replayed_tampered(client: Client) -> None:
    cid = await stripe_connection(client)
    outcomes = ("valid", "replayed", "invalid_signature", "timestamp_out_of_tolerance")
    before = {o: metrics.WEBHOOK_VERIFICATIONS.get("stripe_signature", o) for o in outcomes}
    headers = signed(BODY, OLD)
    status, body = await verify(client, cid, BODY, headers)
    assert (status, body["valid"], body["scheme"]) == (200, True, "stripe_signature")
    assert await verify(client, cid, BODY, headers) == (
        409,
        {
            "valid": False,
            "error": "replayed",
            "message": "this delivery was verified before (replay)",
        },
    )
    status, body = await verify(client, cid, BODY + b" ", signed(BODY, OLD))
    assert (status, body["valid"], body["error"]) == (401, False, "invalid_signature")
    status, body = await verify(client, cid, BODY, signed(BODY, OLD, int(time.time()) - 400))
    assert (status, body["error"]) == (401, "timestamp_out_of_tolerance")
    status, body = await verify(client, cid, BODY, admin())
    assert (status, body["valid"], body["error"]) == (400, False, "missing_header")
    for text in (str(body),):
        assert OLD not in text
    for outcome, count in before.items():
        assert metrics.WEBHOOK_VERIFICATIONS.get("stripe_signature", outcome) == count + 1


async def test_secret_roll_grace(client: Client) -> None:
    cid = await stripe_connection(client)
    resp = await client.patch(
        f"/v1/connections/{cid}/settings",
        headers=admin(),
        json={"settings": {"webhook_secret": NEW}},
    )
    assert resp.status == 200
    new_body = BODY.replace(b"evt_1", b"evt_2")
    status, body = await verify(client, cid, new_body, signed(new_body, NEW))
    assert (status, body["secret_index"]) == (200, 0)
    status, body = await verify(
        client, cid, BODY, signed(BODY, OLD)
    )  # provider still on the old one
    assert (status, body["secret_index"]) == (200, 1)


async def test_after_the_grace_window(make_settings: Callable[..., Settings]) -> None:
    async with TestClient(TestServer(create_app(make_settings(webhook_secret_grace=0)))) as client:
        cid = await stripe_connection(client)
        await client.patch(
            f"/v1/connections/{cid}/settings",
            headers=admin(),
            json={"settings": {"webhook_secret": NEW}},
        )
        status, body = await verify(client, cid, BODY, signed(BODY, OLD))
        assert (status, body["error"]) == (401, "invalid_signature")


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("?connection_id=conn_" + "0" * 26, 404), ("?connection_id=x", 404)],
)
async def test_bad_requests(client: Client, query: str, status: int) -> None:
    resp = await client.post(f"/v1/webhooks/verify{query}", data=BODY, headers=signed(BODY, OLD))
    assert resp.status == status
    assert set(await resp.json()) >= {"error", "message"}


async def test_a_connector_without_webhooks(client: Client) -> None:
    resp = await client.post(
        "/v1/connections",
        headers=admin(),
        json={"tenant_id": "t1", "connector": "sendgrid", "settings": {"api_key": "SG.x"}},
    )
    cid = (await resp.json())["id"]
    status, body = await verify(client, cid, BODY, signed(BODY, OLD))
    assert status == 400 and "declares no webhooks" in body["message"]
