"""The shapes settings take beyond a type: comma lists, store URLs, origins, the events
signing secret, and the fixed sets some settings choose from."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any
from urllib.parse import urlsplit

WHSEC_PREFIX = "whsec_"
MIN_EVENTS_SECRET_BYTES = 16
STORE_SCHEMES = ("sqlite", "redis", "rediss", "redis+cluster", "redis+sentinel")
MIN_ADMIN_TOKEN_LENGTH = 16
LOGO_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
CRASH_POINTS = ("before_intent", "before_send", "after_journal", "after_apply")
"""Where `BROKER_TEST_CRASH_AT` kills a refresh (services/refresh/crash_points.py)."""


def split_list(value: Any) -> Any:
    """A comma-separated environment value as a list (blank parts dropped)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def events_signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: `whsec_<base64>`, or bare base64 as the
    spec's libraries take it too (so a receiver verifying with the same string agrees)."""
    encoded = secret.removeprefix(WHSEC_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # the libraries accept unpadded base64
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "must be whsec_<base64> (or bare base64), as Standard Webhooks receivers expect"
        ) from None


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_store_url(value: str) -> str:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in STORE_SCHEMES:
        raise ValueError(f"must start with one of {', '.join(s + '://' for s in STORE_SCHEMES)}")
    return value


def check_http_url(value: str | None) -> str | None:
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")
    return value


def check_origins(value: list[str]) -> list[str]:
    for origin in value:
        if origin_of(origin) != origin or not urlsplit(origin).netloc:
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    return value


def nameserver_address(server: str) -> tuple[str, int] | None:
    """(address, port) of `ip[:port]` or `[ipv6][:port]` (port 53 by default); None if it
    is neither."""
    host, port = server, "53"
    if server.startswith("["):
        host, sep, rest = server[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] or port
    elif server.count(":") == 1:
        host, port = server.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return address.compressed, int(port)
