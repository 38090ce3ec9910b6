"""How the client authenticates at the token and revocation endpoints.

RFC 6749 2.3.1 (`client_secret_basic`, `client_secret_post`) and RFC 7523 2.2 / OpenID
Connect Core 9 (`private_key_jwt`). The assertion is authlib's `rfc7523.private_key_jwt_sign`
(joserfc underneath, not the deprecated authlib.jose), on a key loaded and checked here.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote_plus

from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, RSAKey

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
    are joined with ':' and base64-encoded, so a ':' inside the id cannot split it.

    Ours: authlib's encode_client_secret_basic joins them raw (it reverted the quoting
    in 1.3.2), which a secret like `p@ss:w+rd%2F&x` does not survive."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _load_key(pem: str) -> RSAKey | ECKey:
    # Ours: joserfc only warns about a short RSA key and signs with any curve; the broker
    # refuses both, and its messages never quote the key.
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's messages are harmless, but the key's own bytes must stay out
        raise ClientCredentialsError("the private key is not an unencrypted PEM key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ClientCredentialsError("an RSA client key needs at least 2048 bits")
        return RSAKey.import_key(key)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return ECKey.import_key(key)
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
    """RFC 7523 3 by authlib: a signed JWT with iss = sub = client_id, aud, a random jti,
    iat, exp. RS256 for RSA keys, ES256 (raw r||s, RFC 7518 3.4) for P-256 keys."""
    key = _load_key(private_key_pem)
    issued = int(now if now is not None else time.time())
    assertion: str = private_key_jwt_sign(
        key,
        client_id,
        audience,
        alg="RS256" if isinstance(key, RSAKey) else "ES256",
        header={"kid": key_id} if key_id else None,
        issued_at=issued,
        expires_at=issued + lifetime,
    )
    return assertion


def apply_client_auth(
    client: ClientAuth, endpoint_url: str, *, now: float | None = None
) -> ClientAuthParts:
    """The headers and body parameters that authenticate `client` at `endpoint_url`.

    Ours: authlib's encode_client_secret_post writes into a form body string, and a
    token request may be JSON (`tokenRequestEncoding`), so the pair goes out as params."""
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
