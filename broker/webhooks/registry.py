"""The registry of schemes and the entry point that picks a verifier from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from broker.webhooks import (
    github_hmac_sha256,
    shopify_hmac_sha256,
    slack_v0,
    standard_webhooks,
    stripe_signature,
)
from broker.webhooks.base import Headers, Verified
from broker.webhooks.errors import UnknownScheme, UnusableSecret

DEFAULT_TOLERANCE = 300


class Verifier(Protocol):
    def __call__(
        self, *, body: bytes, headers: Headers, secrets: Sequence[str], now: float, tolerance: int
    ) -> Verified: ...


# scheme name (a manifest's `webhooks.auth`) -> verifier
SCHEMES: Mapping[str, Verifier] = MappingProxyType(
    {
        stripe_signature.SCHEME: stripe_signature.verify,
        github_hmac_sha256.SCHEME: github_hmac_sha256.verify,
        shopify_hmac_sha256.SCHEME: shopify_hmac_sha256.verify,
        slack_v0.SCHEME: slack_v0.verify,
        standard_webhooks.SCHEME: standard_webhooks.verify,
    }
)


def verify(
    scheme: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Verified:
    """Check one delivery: the raw body and the headers exactly as the provider sent them.

    `secrets` holds every secret that may have signed it (during a roll, old and new; any
    order). Returns what identifies the delivery; raises a `WebhookError` otherwise.
    """
    verifier = SCHEMES.get(scheme)
    if verifier is None:
        raise UnknownScheme(scheme)
    if not isinstance(body, bytes | bytearray):
        raise TypeError("body must be the raw bytes as received, not decoded text")
    if isinstance(secrets, str):  # a lone string is a Sequence[str] of characters
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    if not secrets:
        raise UnusableSecret("no webhook secret is configured")
    for index, secret in enumerate(secrets):
        if not isinstance(secret, str) or not secret:
            raise UnusableSecret(f"webhook secret #{index} is empty")
    return verifier(
        body=bytes(body),
        headers=Headers(headers),
        secrets=tuple(secrets),
        now=now,
        tolerance=tolerance,
    )
