"""Webhook signature verification: pure functions, no I/O, one module per scheme.

`verify(scheme, body=..., headers=..., secrets=..., now=...)` returns a `Verified` or
raises a `WebhookError`. Schemes: `stripe_signature`, `github_hmac_sha256`,
`shopify_hmac_sha256`, `slack_v0`, `standard_webhooks` (with Svix header aliases).
Replay detection (a delivery id seen before) is the caller's: it needs a store.
"""

from __future__ import annotations

from broker.webhooks.base import Verified
from broker.webhooks.errors import (
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    TimestampOutOfTolerance,
    UnknownScheme,
    UnusableSecret,
    WebhookError,
)
from broker.webhooks.registry import DEFAULT_TOLERANCE, SCHEMES, Verifier, verify

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEMES",
    "InvalidSignature",
    "MalformedHeader",
    "MissingHeader",
    "TimestampOutOfTolerance",
    "UnknownScheme",
    "UnusableSecret",
    "Verified",
    "Verifier",
    "WebhookError",
    "verify",
]
