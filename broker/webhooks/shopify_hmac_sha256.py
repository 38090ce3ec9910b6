"""Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>`.

Keyed with the app's client secret (the manifest points at it). No timestamp is signed.
The delivery id is `X-Shopify-Webhook-Id`; it is not covered by the HMAC, so without it
the signed body's digest stands in, and a replay under a new id is caught by the
fingerprint of the signed body.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.webhooks.base import (
    Headers,
    Verified,
    base64_signature,
    fingerprint,
    match,
    signed_fingerprint,
    utf8_keys,
)
from broker.webhooks.errors import InvalidSignature

SCHEME = "shopify_hmac_sha256"
HEADER = "X-Shopify-Hmac-Sha256"
DELIVERY_HEADER = "X-Shopify-Webhook-Id"


def verify(
    *, body: bytes, headers: Headers, secrets: Sequence[str], now: float, tolerance: int
) -> Verified:
    signature = base64_signature(headers.require(HEADER), HEADER)
    keys = utf8_keys(secrets)
    index = match(keys, body, [signature])
    if index is None:
        raise InvalidSignature(f"{HEADER} does not match the payload")
    delivery_id = headers.get(DELIVERY_HEADER) or fingerprint(body)
    return Verified(SCHEME, delivery_id, None, index, signed_fingerprint(keys[index], body))
