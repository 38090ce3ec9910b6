"""How the client authenticates at the token and revocation endpoints.

RFC 6749 2.3.1 (`client_secret_basic`, `client_secret_post`) and RFC 7523 2.2 / OpenID
Connect Core 9 (`private_key_jwt`). The JWT is signed with `cryptography` directly: two
algorithms do not justify authlib.jose, which is deprecated in the installed authlib.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote_plus

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from broker.oauth.errors import ClientCredentialsError

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MIN_ASSERTION_LIFETIME = 60
MAX_ASSERTION_LIFETIME = 300


@dataclass(frozen=True)
class ClientAuth:
    """A client's credentials and the method it uses (the manifest's `tokenAuthMethod`).

    `audience` overrides the assertion's `aud` (default: the URL of the endpoint called)
    for servers that want their issuer identifier there.
    """

    method: ClientAuthMethod
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    key_id: str | None = None
    audience: str | None = None
    assertion_lifetime: int = 120

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ClientCredentialsError("the OAuth client has no client_id")
        if self.method == "private_key_jwt":
            if not self.private_key_pem:
                raise ClientCredentialsError("private_key_jwt needs a private key")
            if not MIN_ASSERTION_LIFETIME <= self.assertion_lifetime <= MAX_ASSERTION_LIFETIME:
                raise ClientCredentialsError("assertion lifetime must be 60 to 300 seconds")
        elif not self.client_secret:
            raise ClientCredentialsError(f"{self.method} needs a client secret")


@dataclass(frozen=True)
class ClientAuthParts:
    """What client authentication adds to a request: headers and body parameters."""

    headers: dict[str, str] = field(repr=False)
    params: dict[str, str] = field(repr=False)


def basic_authorization_header(client_id: str, client_secret: str) -> str:
    """RFC 6749 2.3.1: id and secret are each form-urlencoded (Appendix B) *before* they
    are joined with ':' and base64-encoded, so a ':' inside the id cannot split it."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _load_key(pem: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's messages are harmless, but the key's own bytes must stay out
        raise ClientCredentialsError("the private key is not an unencrypted PEM key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ClientCredentialsError("an RSA client key needs at least 2048 bits")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ClientCredentialsError("the client key must be RSA (RS256) or EC P-256 (ES256)")


def create_client_assertion(
    client_id: str,
    private_key_pem: str,
    audience: str,
    *,
    key_id: str | None = None,
    now: float | None = None,
    lifetime: int = 120,
) -> str:
    """RFC 7523 3: a signed JWT with iss = sub = client_id, aud, a random jti, iat, exp.
    RS256 for RSA keys, ES256 (raw r||s, RFC 7518 3.4) for P-256 keys."""
    key = _load_key(private_key_pem)
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    issued = int(now if now is not None else time.time())
    header: dict[str, str] = {"alg": alg, "typ": "JWT"}
    if key_id:
        header["kid"] = key_id
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),  # servers reject a replayed jti
        "iat": issued,
        "exp": issued + lifetime,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ).encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode('ascii')}.{_b64url(signature)}"


def apply_client_auth(
    client: ClientAuth, endpoint_url: str, *, now: float | None = None
) -> ClientAuthParts:
    """The headers and body parameters that authenticate `client` at `endpoint_url`."""
    if client.method == "client_secret_basic":
        assert client.client_secret is not None  # checked in ClientAuth.__post_init__
        header = basic_authorization_header(client.client_id, client.client_secret)
        return ClientAuthParts(headers={"Authorization": header}, params={})
    if client.method == "client_secret_post":
        assert client.client_secret is not None
        params = {"client_id": client.client_id, "client_secret": client.client_secret}
        return ClientAuthParts(headers={}, params=params)
    assert client.private_key_pem is not None
    assertion = create_client_assertion(
        client.client_id,
        client.private_key_pem,
        client.audience or endpoint_url,
        key_id=client.key_id,
        now=now,
        lifetime=client.assertion_lifetime,
    )
    params = {"client_assertion_type": JWT_BEARER_ASSERTION, "client_assertion": assertion}
    return ClientAuthParts(headers={}, params=params)
