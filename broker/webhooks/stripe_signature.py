"""Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`.

HMAC-SHA256 keyed with the whole endpoint secret string (`whsec_...` included, as
Stripe's libraries do) over `<t>.` + raw body. Any `v1` may match: while a rolled secret
stays active Stripe sends one `v1` per secret. Every other scheme (`v0` is a fake test-mode
signature) is ignored, as Stripe says, against downgrades. Stripe's event id is inside
the body, so the delivery is identified by what its signature covers.
"""

from __future__ import annotations

from collections.abc import Sequence

from broker.webhooks.base import (
    Headers,
    Verified,
    check_tolerance,
    fingerprint,
    hex_signature,
    match,
    parse_timestamp,
    signed_fingerprint,
    utf8_keys,
)
from broker.webhooks.errors import InvalidSignature, MalformedHeader

SCHEME = "stripe_signature"
HEADER = "Stripe-Signature"


def _parse(value: str) -> tuple[int, list[bytes]]:
    timestamp: int | None = None
    signatures: list[bytes] = []
    for element in value.split(","):
        key, sep, item = element.partition("=")
        if not sep:
            raise MalformedHeader(HEADER, "every element must be key=value")
        if key == "t":
            if timestamp is not None:
                raise MalformedHeader(HEADER, "more than one t= element")
            timestamp = parse_timestamp(item, HEADER)
        elif key == "v1":
            signatures.append(hex_signature(item, HEADER))
    if timestamp is None:
        raise MalformedHeader(HEADER, "no t= element")
    return timestamp, signatures


def verify(
    *, body: bytes, headers: Headers, secrets: Sequence[str], now: float, tolerance: int
) -> Verified:
    timestamp, signatures = _parse(headers.require(HEADER))
    if not signatures:
        raise InvalidSignature(f"{HEADER} header carries no v1 signature")
    message = f"{timestamp}.".encode() + body
    keys = utf8_keys(secrets)
    index = match(keys, message, signatures)
    if index is None:
        raise InvalidSignature(f"no v1 signature in {HEADER} matches the payload")
    check_tolerance(timestamp, now, tolerance)
    return Verified(
        SCHEME, fingerprint(message), timestamp, index, signed_fingerprint(keys[index], message)
    )
