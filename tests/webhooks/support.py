"""Shared pieces of the webhook tests: a fixed clock, a canary secret, a leak check."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from broker.webhooks import WebhookError

NOW = 1_750_000_000
# a secret that must never show up in any error text
CANARY = "canary-7c1d0e5b-secret-must-not-leak"
# non-ASCII and trailing whitespace: the raw bytes, not a re-encoding, are what is signed
BODY = '{"id":"evt_1","object":"event","name":"café ☕"}\n'.encode()


def hmac_sha256(key: str | bytes, message: bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return hmac.new(raw, message, hashlib.sha256).digest()


def assert_clean(exc: WebhookError, secret: str, message: bytes) -> None:
    """Neither the secret nor the signature the broker expected appears anywhere in `exc`."""
    expected = hmac_sha256(secret, message)
    forbidden = [secret, expected.hex(), base64.b64encode(expected).decode()]
    texts = [str(exc), repr(exc), *(str(arg) for arg in exc.args)]
    for text in texts:
        for value in forbidden:
            assert value not in text


def refused(excinfo: pytest.ExceptionInfo[WebhookError], code: str, status: int) -> None:
    assert excinfo.value.code == code
    assert excinfo.value.status == status
