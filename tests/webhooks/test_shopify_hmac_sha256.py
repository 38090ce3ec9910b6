"""shopify_hmac_sha256: base64 HMAC-SHA256 of the raw body with the app's client secret.

Shopify publishes no test vector and its Python library has no webhook verifier, so the
signatures here come from the standard library, independently of the code under test.
"""

from __future__ import annotations

import base64

import pytest

from broker.webhooks import (
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    Verified,
    WebhookError,
    verify,
)
from tests.webhooks.support import BODY, CANARY, NOW, assert_clean, hmac_sha256, refused

SECRET = "shpss_new_client_secret"
OLD = "shpss_old_client_secret"
WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def sign(secret: str, body: bytes = BODY) -> str:
    return base64.b64encode(hmac_sha256(secret, body)).decode()


def check(
    headers: dict[str, str], secrets: list[str] | None = None, body: bytes = BODY
) -> Verified:
    return verify(
        "shopify_hmac_sha256", body=body, headers=headers, secrets=secrets or [SECRET], now=NOW
    )


def test_valid_delivery_verifies() -> None:
    result = check({"X-Shopify-Hmac-Sha256": sign(SECRET), "X-Shopify-Webhook-Id": WEBHOOK_ID})
    assert result.delivery_id == WEBHOOK_ID
    assert result.timestamp is None
    assert result.secret_index == 0


def test_without_a_webhook_id_the_signed_body_identifies_it() -> None:
    assert check({"X-Shopify-Hmac-Sha256": sign(SECRET)}).delivery_id.startswith("sha256:")


def test_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature) as excinfo:
        check({"X-Shopify-Hmac-Sha256": sign(SECRET)}, body=BODY + b" ")
    refused(excinfo, "invalid_signature", 401)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        check({"X-Shopify-Hmac-Sha256": sign("shpss_someone_else")})


def test_missing_header_is_400() -> None:
    with pytest.raises(MissingHeader) as excinfo:
        check({"X-Shopify-Webhook-Id": WEBHOOK_ID})
    refused(excinfo, "missing_header", 400)


@pytest.mark.parametrize(
    "value",
    [
        hmac_sha256(SECRET, BODY).hex(),  # hex is not what Shopify sends
        sign(SECRET).rstrip("="),
        sign(SECRET)[:-4],
        "not base64!",
        base64.b64encode(b"short").decode(),
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
    ],
)
def test_malformed_header_is_400(value: str) -> None:
    with pytest.raises(MalformedHeader) as excinfo:
        check({"X-Shopify-Hmac-Sha256": value})
    refused(excinfo, "malformed_header", 400)


def test_both_secrets_verify_during_a_roll() -> None:
    for signer in (SECRET, OLD):
        assert check({"X-Shopify-Hmac-Sha256": sign(signer)}, [OLD, SECRET])


def test_old_secret_verifies_while_the_new_one_is_listed_first() -> None:
    assert check({"X-Shopify-Hmac-Sha256": sign(OLD)}, [SECRET, OLD]).secret_index == 1


@pytest.mark.parametrize("name", ["x-shopify-hmac-sha256", "X-Shopify-Hmac-SHA256"])
def test_header_names_are_case_insensitive(name: str) -> None:
    result = check({name: sign(SECRET), "x-shopify-webhook-id": WEBHOOK_ID})
    assert result.delivery_id == WEBHOOK_ID


def test_the_fingerprint_is_the_signed_body_whatever_the_webhook_id_says() -> None:
    first = check({"X-Shopify-Hmac-Sha256": sign(SECRET), "X-Shopify-Webhook-Id": "w-1"})
    second = check({"X-Shopify-Hmac-Sha256": sign(SECRET), "X-Shopify-Webhook-Id": "w-2"})
    assert (first.delivery_id, second.fingerprint) == ("w-1", first.fingerprint)
    other = check({"X-Shopify-Hmac-Sha256": sign(SECRET, BODY + b" ")}, body=BODY + b" ")
    assert other.fingerprint != first.fingerprint


def test_no_error_leaks_the_secret_or_expected_signature() -> None:
    cases: list[tuple[dict[str, str], bytes]] = [
        ({"X-Shopify-Hmac-Sha256": sign(CANARY)}, BODY + b"x"),
        ({"X-Shopify-Hmac-Sha256": sign("other")}, BODY),
        ({"X-Shopify-Hmac-Sha256": "@@@"}, BODY),
        ({}, BODY),
    ]
    for headers, body in cases:
        with pytest.raises(WebhookError) as excinfo:
            verify("shopify_hmac_sha256", body=body, headers=headers, secrets=[CANARY], now=NOW)
        assert_clean(excinfo.value, CANARY, body)
