"""RFC 6749 2.3.1 and RFC 7523: the three ways the client authenticates."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote_plus

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broker.oauth import (
    JWT_BEARER_ASSERTION,
    ClientAuth,
    ClientCredentialsError,
    apply_client_auth,
    basic_authorization_header,
    create_client_assertion,
)

SECRET = "p@ss:w+rd%2F&x"
CLIENT_ID = "my client:1"
TOKEN_URL = "https://login.example/oauth/token"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verify(jwt: str, public_key: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a compact JWS with the public key; return (header, claims)."""
    head, payload, signature = jwt.split(".")
    signed = f"{head}.{payload}".encode()
    raw = _b64url_decode(signature)
    header = json.loads(_b64url_decode(head))
    if header["alg"] == "RS256":
        public_key.verify(raw, signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert header["alg"] == "ES256" and len(raw) == 64
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    return header, json.loads(_b64url_decode(payload))


def test_basic_header_form_encodes_id_and_secret_before_base64() -> None:
    header = basic_authorization_header(CLIENT_ID, SECRET)
    # RFC 6749 2.3.1 + Appendix B: "my+client%3A1" ":" "p%40ss%3Aw%2Brd%252F%26x"
    assert header == "Basic bXkrY2xpZW50JTNBMTpwJTQwc3MlM0F3JTJCcmQlMjUyRiUyNng="
    user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, SECRET)


def test_basic_method_puts_nothing_in_the_body() -> None:
    parts = apply_client_auth(
        ClientAuth("client_secret_basic", CLIENT_ID, client_secret=SECRET), TOKEN_URL
    )
    assert parts.headers == {"Authorization": basic_authorization_header(CLIENT_ID, SECRET)}
    assert parts.params == {}
    assert SECRET not in repr(parts)


def test_post_method_puts_id_and_secret_in_the_body() -> None:
    parts = apply_client_auth(
        ClientAuth("client_secret_post", CLIENT_ID, client_secret=SECRET), TOKEN_URL
    )
    assert parts.headers == {}
    assert parts.params == {"client_id": CLIENT_ID, "client_secret": SECRET}


def test_credentials_stay_out_of_repr(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(rsa_key)
    auth = ClientAuth("private_key_jwt", "c", private_key_pem=pem, client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(auth) and "PRIVATE" not in repr(auth)


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_private_key_jwt_assertion_verifies_and_has_the_claims(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key = request.getfixturevalue(key_name)
    auth = ClientAuth("private_key_jwt", "client-1", private_key_pem=_pem(key), key_id="k-7")
    parts = apply_client_auth(auth, TOKEN_URL, now=1_700_000_000.4)
    assert parts.headers == {}
    assert parts.params["client_assertion_type"] == JWT_BEARER_ASSERTION
    header, claims = _verify(parts.params["client_assertion"], key.public_key())
    assert header == {
        "alg": "RS256" if key_name == "rsa_key" else "ES256",
        "typ": "JWT",
        "kid": "k-7",
    }
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == 1_700_000_000
    assert 60 <= claims["exp"] - claims["iat"] <= 300
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


def test_assertions_have_fresh_jtis_and_optional_kid(ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = _pem(ec_key)
    first = create_client_assertion("c", pem, TOKEN_URL, now=0)
    second = create_client_assertion("c", pem, TOKEN_URL, now=0)
    h1, c1 = _verify(first, ec_key.public_key())
    _, c2 = _verify(second, ec_key.public_key())
    assert c1["jti"] != c2["jti"]
    assert "kid" not in h1


def test_audience_override(ec_key: ec.EllipticCurvePrivateKey) -> None:
    auth = ClientAuth(
        "private_key_jwt", "c", private_key_pem=_pem(ec_key), audience="https://login.example"
    )
    _, claims = _verify(
        apply_client_auth(auth, TOKEN_URL).params["client_assertion"], ec_key.public_key()
    )
    assert claims["aud"] == "https://login.example"


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClientAuth("client_secret_basic", "c"),
        lambda: ClientAuth("client_secret_post", "c", client_secret=""),
        lambda: ClientAuth("private_key_jwt", "c"),
        lambda: ClientAuth("client_secret_basic", "", client_secret="s"),
        lambda: ClientAuth("private_key_jwt", "c", private_key_pem="x", assertion_lifetime=3600),
    ],
)
def test_missing_or_bad_credentials_are_refused(make: Any) -> None:
    with pytest.raises(ClientCredentialsError) as caught:
        make()
    assert caught.value.status == 400


def test_unusable_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(ClientCredentialsError, match="not an unencrypted PEM") as caught:
        create_client_assertion("c", "-----BEGIN PRIVATE KEY-----\nsecretstuff\n", TOKEN_URL)
    assert "secretstuff" not in str(caught.value)
    p384 = _pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ClientCredentialsError, match="P-256"):
        create_client_assertion("c", p384, TOKEN_URL)
    small = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    with pytest.raises(ClientCredentialsError, match="2048"):
        create_client_assertion("c", small, TOKEN_URL)
