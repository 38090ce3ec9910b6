"""RFC 7636 Proof Key for Code Exchange, S256 only (`plain` protects nothing).

The transform is authlib's `rfc7636.create_s256_code_challenge`; the verifier is ours.
"""

from __future__ import annotations

import re
import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge

S256 = "S256"
# RFC 7636 4.1: code-verifier = 43*128unreserved
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def create_code_verifier() -> str:
    """RFC 7636 4.1: 32 random octets, base64url without padding -> 43 chars, 256 bits.

    Ours: authlib's rfc7636 has no verifier helper (its web-framework clients draw one inline)."""
    return secrets.token_urlsafe(32)


def create_s256_challenge(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(ASCII(code_verifier))), no padding, by authlib.

    The shape check (4.1) is ours: authlib hashes whatever it is given, and its own
    pattern ends in `$`, which lets a trailing newline through."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("a PKCE code verifier is 43 to 128 unreserved characters (RFC 7636 4.1)")
    challenge: str = create_s256_code_challenge(verifier)
    return challenge
