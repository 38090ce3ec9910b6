"""GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.

No timestamp is signed. The delivery id is `X-GitHub-Delivery`; it is not covered by the
HMAC, so without it (GitHub always sends it) the signed body's digest stands in, and a
replay under a new id is caught by the fingerprint of the signed body.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.webhooks.base import (
    Headers,
    Verified,
    fingerprint,
    hex_signature,
    match,
    signed_fingerprint,
    utf8_keys,
)
from broker.webhooks.errors import InvalidSignature, MalformedHeader

SCHEME = "github_hmac_sha256"
HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
_PREFIX = "sha256="


def verify(
    *, body: bytes, headers: Headers, secrets: Sequence[str], now: float, tolerance: int
) -> Verified:
    value = headers.require(HEADER)
    if not value.startswith(_PREFIX):
        raise MalformedHeader(HEADER, f"must start with {_PREFIX}")
    signature = hex_signature(value[len(_PREFIX) :], HEADER)
    keys = utf8_keys(secrets)
    index = match(keys, body, [signature])
    if index is None:
        raise InvalidSignature(f"{HEADER} does not match the payload")
    delivery_id = headers.get(DELIVERY_HEADER) or fingerprint(body)
    return Verified(SCHEME, delivery_id, None, index, signed_fingerprint(keys[index], body))
