"""Standard Webhooks (and Svix, which it grew from).

Headers `webhook-id`, `webhook-timestamp`, `webhook-signature`, or the same three with
the `svix-` prefix. The signature header is a space-separated list of `<version>,<base64>`
entries; only `v1` (HMAC-SHA256) is ours, other versions (`v1a` is ed25519) are skipped.
Signed content: `<id>.<timestamp>.<raw body>`. The secret is `whsec_<base64>`; like the
spec's libraries we also take it without the prefix, but always as base64.
The id is signed, so it is the delivery id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from broker.webhooks.base import (
    Headers,
    Verified,
    base64_signature,
    check_tolerance,
    match,
    parse_timestamp,
    signed_fingerprint,
)
from broker.webhooks.errors import InvalidSignature, MalformedHeader, UnusableSecret

SCHEME = "standard_webhooks"
SECRET_PREFIX = "whsec_"
_PREFIXES = ("webhook-", "svix-")


def _key(secret: str, index: int) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    # the libraries accept unpadded base64; restore the padding before a strict decode
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise UnusableSecret(f"webhook secret #{index} is not whsec_<base64>")
    return key


def _prefix(headers: Headers) -> str:
    # one sender uses one family; mixing them would verify fields from different sets
    for prefix in _PREFIXES:
        if any(headers.get(prefix + field) for field in ("id", "timestamp", "signature")):
            return prefix
    return _PREFIXES[0]


def verify(
    *, body: bytes, headers: Headers, secrets: Sequence[str], now: float, tolerance: int
) -> Verified:
    keys = [_key(secret, index) for index, secret in enumerate(secrets)]
    prefix = _prefix(headers)
    id_header, ts_header, sig_header = (
        prefix + field for field in ("id", "timestamp", "signature")
    )
    msg_id = headers.require(id_header)
    stamp = headers.require(ts_header)
    value = headers.require(sig_header)
    timestamp = parse_timestamp(stamp, ts_header)
    signatures: list[bytes] = []
    for entry in value.split():
        version, sep, encoded = entry.partition(",")
        if not sep:
            raise MalformedHeader(sig_header, "entries must be <version>,<signature>")
        if version == "v1":
            signatures.append(base64_signature(encoded, sig_header))
    if not signatures:
        raise InvalidSignature(f"{sig_header} header carries no v1 signature")
    message = f"{msg_id}.{stamp}.".encode() + body
    index = match(keys, message, signatures)
    if index is None:
        raise InvalidSignature(f"no v1 signature in {sig_header} matches the payload")
    check_tolerance(timestamp, now, tolerance)
    return Verified(SCHEME, msg_id, timestamp, index, signed_fingerprint(keys[index], message))
