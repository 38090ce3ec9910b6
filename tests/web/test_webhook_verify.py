"""POST /v1/webhooks/verify: the broker verifies with the secret it keeps, spots replays, and
accepts the old secret for a while after a roll."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import stripe
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.web.app import create_app
from tests.helpers import admin, metric

Client = TestClient[Any, Any]
OLD = "whsec_CANARY_old_4d2f0a9b"
NEW = "whsec_CANARY_new_77c1e3aa"
ROOT = Path(__file__).resolve().parents[2]
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
    before = {
        o: metric("broker_webhook_verifications_total", scheme="stripe_signature", outcome=o)
        for o in outcomes
    }
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
        assert (
            metric("broker_webhook_verifications_total", scheme="stripe_signature", outcome=outcome)
            == count + 1
        )


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


def hmac_connectors(folder: Path) -> Path:
    """API-key connectors that sign like GitHub and Shopify (the bundled ones are OAuth)."""
    stripe_manifest = json.loads((ROOT / "connectors" / "stripe" / "manifest.json").read_text())
    for key, scheme in (("gh-hooks", "github_hmac_sha256"), ("shop-hooks", "shopify_hmac_sha256")):
        manifest = {**stripe_manifest, "key": key, "name": key, "ui": {"lineColumns": []}}
        manifest["webhooks"] = {"endpoint": f"/webhooks/{key}", "auth": scheme}
        manifest["fields"] = []
        (folder / key).mkdir(parents=True)
        (folder / key / "manifest.json").write_text(json.dumps(manifest))
    return folder


def github_signed(body: bytes, delivery: str) -> dict[str, str]:
    signature = hmac.new(OLD.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Delivery": delivery}


def shopify_signed(body: bytes, delivery: str) -> dict[str, str]:
    signature = hmac.new(OLD.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(signature).decode(),
        "X-Shopify-Webhook-Id": delivery,
    }


@pytest.mark.parametrize(
    ("connector", "sign"), [("gh-hooks", github_signed), ("shop-hooks", shopify_signed)]
)
async def test_a_new_delivery_id_does_not_make_a_signed_body_new(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    connector: str,
    sign: Callable[[bytes, str], dict[str, str]],
) -> None:
    # The delivery-id header is not signed: whoever saw one delivery can resend its body
    # and signature under any id. What the signature covers decides, the header only adds.
    settings = make_settings(connectors_dirs=str(hmac_connectors(tmp_path / "connectors")))
    async with TestClient(TestServer(create_app(settings))) as client:
        resp = await client.post(
            "/v1/connections",
            headers=admin(),
            json={
                "tenant_id": "t1",
                "connector": connector,
                "settings": {"api_key": "k", "webhook_secret": OLD},
            },
        )
        assert resp.status == 201, await resp.text()
        cid = (await resp.json())["id"]
        answers = [
            await verify(client, cid, BODY, {**sign(BODY, delivery), **admin()})
            for delivery in ("d-1", "d-1", "d-2")
        ]
        assert [(status, body.get("error")) for status, body in answers] == [
            (200, None),
            (409, "replayed"),
            (409, "replayed"),
        ]
        other = BODY.replace(b"evt_1", b"evt_2")
        status, _ = await verify(client, cid, other, {**sign(other, "d-3"), **admin()})
        assert status == 200  # a new body is a new delivery


async def test_claims_without_a_signed_timestamp_last_the_replay_window(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # GitHub signs no time: a claim that expired after the 300 s tolerance would let a
    # captured delivery verify again ten minutes later. Stripe signs one: its tolerance
    # already refuses an old delivery, so its claims need not outlive it.
    settings = make_settings(
        connectors_dirs=str(hmac_connectors(tmp_path / "connectors")),
        webhook_replay_window=7200,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        cids = {}
        for connector, values in (
            ("gh-hooks", {"api_key": "k", "webhook_secret": OLD}),
            ("stripe", {"api_key": "k", "webhook_secret": OLD}),
        ):
            resp = await client.post(
                "/v1/connections",
                headers=admin(),
                json={"tenant_id": "t1", "connector": connector, "settings": values},
            )
            cids[connector] = (await resp.json())["id"]
        started = time.time()
        status, _ = await verify(
            client, cids["gh-hooks"], BODY, {**github_signed(BODY, "d-1"), **admin()}
        )
        assert status == 200
        status, _ = await verify(client, cids["stripe"], BODY, signed(BODY, OLD))
        assert status == 200
        finished = time.time()
    with closing(sqlite3.connect(tmp_path / "broker.db")) as db:
        claims = db.execute("SELECT key, expires_at FROM locks WHERE key LIKE '%delivery:%'")
        expiries: dict[str, list[float]] = {}
        for key, expires_at in claims:
            owner = next(name for name, cid in cids.items() if cid in key)
            expiries.setdefault(owner, []).append(expires_at)
    assert len(expiries["gh-hooks"]) == 2  # the header id and the signed bytes
    assert all(started + 7200 <= at <= finished + 7200 for at in expiries["gh-hooks"])
    assert expiries["stripe"]
    assert all(started + 600 <= at <= finished + 2 * 300 + 60 for at in expiries["stripe"])
