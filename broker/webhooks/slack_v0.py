"""Slack: `X-Slack-Signature: v0=<hex>` over `v0:<X-Slack-Request-Timestamp>:<raw body>`.

Keyed with the app's signing secret. Slack sends no delivery id, so the delivery is
identified by what its signature covers (timestamp and body).
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

SCHEME = "slack_v0"
HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
_PREFIX = "v0="


def verify(
    *, body: bytes, headers: Headers, secrets: Sequence[str], now: float, tolerance: int
) -> Verified:
    value = headers.require(HEADER)
    stamp = headers.require(TIMESTAMP_HEADER)
    if not value.startswith(_PREFIX):
        raise MalformedHeader(HEADER, f"must start with {_PREFIX}")
    signature = hex_signature(value[len(_PREFIX) :], HEADER)
    timestamp = parse_timestamp(stamp, TIMESTAMP_HEADER)
    message = f"v0:{stamp}:".encode() + body
    keys = utf8_keys(secrets)
    index = match(keys, message, [signature])
    if index is None:
        raise InvalidSignature(f"{HEADER} does not match the payload")
    check_tolerance(timestamp, now, tolerance)
    return Verified(
        SCHEME, fingerprint(message), timestamp, index, signed_fingerprint(keys[index], message)
    )
