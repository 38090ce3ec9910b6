"""What every scheme shares: the result, header lookup, strict parsing, HMAC matching.

Delivery ids: where a provider sends one (GitHub, Shopify, Standard Webhooks) it is the
id. Where it does not (Stripe's event id is in the body, Slack has none) the delivery is
identified by its signature, taken as a digest of the exact bytes the signature covers,
not the header text: a header is not itself signed, so a replay that drops one of two
`v1=` entries or changes hex case would otherwise look like a new delivery.

A delivery-id header that the signature does not cover (GitHub, Shopify) can be changed by
anyone who saw one delivery, so every delivery also carries a `fingerprint` of what is
signed: replay detection claims both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from broker.webhooks.errors import MalformedHeader, MissingHeader, TimestampOutOfTolerance

# Unix seconds as the providers send them: no sign, no leading zero, no fraction, so the
# text we sign is exactly the text the sender signed.
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SHA256_SIZE = 32


@dataclass(frozen=True, slots=True)
class Verified:
    """An authentic delivery.

    `delivery_id` and `fingerprint` are the keys for replay detection (the provider's id,
    and what no replay can change); `timestamp` is the signed send time where the scheme
    has one; `secret_index` is the position in `secrets` that matched, so an operator can
    tell when an old secret stopped being used and can retire.
    """

    scheme: str
    delivery_id: str
    timestamp: int | None
    secret_index: int
    fingerprint: str


class Headers:
    """Case-insensitive, whitespace-trimmed view of the headers as received.

    A name sent twice with different values (`X-Foo` and `x-foo` in a dict, or repeated
    in a multidict) is ambiguous: reading it is a malformed header, never a guess.
    """

    def __init__(self, raw: Mapping[str, str]) -> None:
        values: dict[str, str | None] = {}
        for name, value in raw.items():
            key, text = name.lower(), value.strip()
            previous = values.get(key, text)
            values[key] = text if previous == text else None
        self._values = values

    def get(self, name: str) -> str | None:
        key = name.lower()
        if key in self._values and self._values[key] is None:
            raise MalformedHeader(name, "sent more than once with different values")
        return self._values.get(key) or None  # empty counts as absent

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise MissingHeader(name)
        return value


def parse_timestamp(value: str, header: str) -> int:
    if not _TIMESTAMP.fullmatch(value):
        raise MalformedHeader(header, "timestamp is not integer Unix seconds")
    return int(value)


def check_tolerance(timestamp: int, now: float, tolerance: int) -> None:
    # both ways: a timestamp far in the future is as suspect as a stale one
    if abs(now - timestamp) > tolerance:
        raise TimestampOutOfTolerance(tolerance)


def hex_signature(value: str, header: str) -> bytes:
    if not _HEX_SHA256.fullmatch(value):
        raise MalformedHeader(header, "signature is not a hex SHA-256 digest")
    return bytes.fromhex(value)


def base64_signature(value: str, header: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _SHA256_SIZE:
        raise MalformedHeader(header, "signature is not a base64 SHA-256 digest")
    return raw


def utf8_keys(secrets: Sequence[str]) -> list[bytes]:
    """Keys for schemes that use the secret string itself as the HMAC key."""
    return [secret.encode("utf-8") for secret in secrets]


def match(keys: Sequence[bytes], message: bytes, candidates: Sequence[bytes]) -> int | None:
    """Index of the first key whose HMAC-SHA256 of `message` equals any candidate.

    Every pair is compared with `hmac.compare_digest`, with no early exit, so timing says
    nothing about how close a forged signature came.
    """
    found: int | None = None
    for index, key in enumerate(keys):
        expected = hmac.new(key, message, hashlib.sha256).digest()
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate) and found is None:
                found = index
    return found


def fingerprint(message: bytes) -> str:
    """Delivery id for schemes without one: a digest of everything the signature covers."""
    return "sha256:" + hashlib.sha256(message).hexdigest()


def signed_fingerprint(key: bytes, message: bytes) -> str:
    """A digest of the signed bytes and their signature. The signature is recomputed with
    the key that matched rather than taken from the header, whose spelling (hex case, which
    of several entries) a replay is free to change."""
    signature = hmac.new(key, message, hashlib.sha256).digest()
    return "signed:" + hashlib.sha256(signature + message).hexdigest()
