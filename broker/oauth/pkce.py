"""RFC 7636 Proof Key for Code Exchange, S256 only (`plain` protects nothing)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

S256 = "S256"
# RFC 7636 4.1: code-verifier = 43*128unreserved
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def create_code_verifier() -> str:
    """RFC 7636 4.1: 32 random octets, base64url without padding -> 43 chars, 256 bits."""
    return secrets.token_urlsafe(32)


def create_s256_challenge(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(ASCII(code_verifier))), no padding."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("a PKCE code verifier is 43 to 128 unreserved characters (RFC 7636 4.1)")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
