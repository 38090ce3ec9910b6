"""Runtime tokens: short-lived, scoped, verifiable without a store round trip.

    brt1.<key id>.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>

The MAC key is derived from the named keyring key (`derive_key(..., "runtime-token")`), so
tokens rotate with the keyring: a token stays valid while its key is in the keyring, and is
refused once that key is retired. The claims fix the grant at mint time: one connection,
its tenant, the secret names the manifest grants, and whether OAuth access is allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from broker.crypto.aead import decode_base64url
from broker.crypto.keyring import Keyring, derive_key, valid_key_id
from broker.errors import Unauthorized, UnknownKey

PREFIX = "brt1"
PURPOSE = "runtime-token"
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class RuntimeGrant:
    token_id: str
    """Random id of this token, recorded in the audit log instead of the token."""
    connection_id: str
    tenant_id: str
    connector: str
    secrets: frozenset[str]
    oauth: bool
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # strict: a lenient decoder would take the token with junk appended as the same token
    return decode_base64url(text.encode())


_derived: dict[tuple[str, bytes], bytes] = {}


def _mac(keyring: Keyring, key_id: str, signed: str) -> bytes:
    # HKDF per request would cost more than the HMAC itself; the cache is keyed by the key
    # bytes too, so a key id reused with new material never hits a stale entry.
    cache_key = (key_id, keyring.key(key_id))
    mac_key = _derived.get(cache_key)
    if mac_key is None:
        if len(_derived) > 64:
            _derived.clear()
        mac_key = _derived[cache_key] = derive_key(keyring, key_id, PURPOSE)
    return hmac.new(mac_key, signed.encode(), hashlib.sha256).digest()


def create_runtime_token(
    keyring: Keyring,
    *,
    connection_id: str,
    tenant_id: str,
    connector: str,
    secret_names: frozenset[str],
    oauth: bool,
    now: int,
    ttl: int,
) -> tuple[str, RuntimeGrant]:
    grant = RuntimeGrant(
        token_id="rt_" + secrets.token_hex(8),
        connection_id=connection_id,
        tenant_id=tenant_id,
        connector=connector,
        secrets=secret_names,
        oauth=oauth,
        issued_at=now,
        expires_at=now + ttl,
    )
    claims = {
        "jti": grant.token_id,
        "cid": connection_id,
        "tid": tenant_id,
        "con": connector,
        "sec": sorted(secret_names),
        "oauth": oauth,
        "iat": now,
        "exp": now + ttl,
    }
    signed = (
        f"{PREFIX}.{keyring.primary}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    )
    return f"{signed}.{_b64(_mac(keyring, keyring.primary, signed))}", grant


def verify_runtime_token(keyring: Keyring, token: str, *, now: float) -> RuntimeGrant:
    """The grant, or `Unauthorized` (never saying more than needed about why)."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN_LENGTH or len(parts) != 4 or parts[0] != PREFIX:
        raise Unauthorized("malformed runtime token")
    _, key_id, payload, signature = parts
    if not valid_key_id(key_id):
        raise Unauthorized("malformed runtime token")
    try:
        expected = _mac(keyring, key_id, f"{PREFIX}.{key_id}.{payload}")
        given = _unb64(signature)
    except UnknownKey:
        raise Unauthorized("runtime token signed with a retired key") from None
    except ValueError:
        raise Unauthorized("malformed runtime token") from None
    if not hmac.compare_digest(expected, given):
        raise Unauthorized("invalid runtime token")
    try:
        claims = json.loads(_unb64(payload))
        grant = RuntimeGrant(
            token_id=str(claims["jti"]),
            connection_id=str(claims["cid"]),
            tenant_id=str(claims["tid"]),
            connector=str(claims["con"]),
            secrets=frozenset(str(n) for n in claims["sec"]),
            oauth=bool(claims["oauth"]),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, KeyError, TypeError):
        raise Unauthorized("malformed runtime token") from None
    if grant.expires_at <= now:
        raise Unauthorized("runtime token expired")
    return grant


class TokenVerifier:
    """`verify_runtime_token` with a cache of verified grants, keyed by the exact token.

    The token string is the credential, so a hit is as good as a verification; expiry is
    still checked on every use, and the cache is dropped whenever the keyring changes (a
    retired key must take effect at once)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._keyring: Keyring | None = None
        self._grants: dict[str, RuntimeGrant] = {}
        self._max = max_entries

    def verify(self, keyring: Keyring, token: str, *, now: float) -> RuntimeGrant:
        if keyring is not self._keyring:
            self._keyring, self._grants = keyring, {}
        grant = self._grants.get(token)
        if grant is None:
            grant = verify_runtime_token(keyring, token, now=now)
            if len(self._grants) >= self._max:
                self._grants.clear()
            self._grants[token] = grant
        elif grant.expires_at <= now:
            del self._grants[token]
            raise Unauthorized("runtime token expired")
        return grant
