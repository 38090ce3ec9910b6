"""The OAuth peer itself: real oidc-provider flows driven by hand with aiohttp (no broker code).

These prove the facts the broker's end-to-end tests rely on: the authorization response carries
`iss`, client_secret_basic credentials must be form-urlencoded (RFC 6749 2.3.1), refresh tokens
need offline_access + prompt=consent, rotation plus reuse kills the grant, PKCE can be forced.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.peers.oidc import OidcPeer, drive_browser, oidc_peer_fixture

REDIRECT_URI = "http://127.0.0.1:9/oauth/callback/peer-test"
TRICKY_SECRET = "p@ss:w+rd%2F&x"
SCOPE = "openid offline_access"

_JWT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": "jwt-client-key",
        "alg": "RS256",
        "use": "sig",
        "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": _b64url(numbers.e.to_bytes(3, "big")),
    }


def _client(client_id: str, auth_method: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": auth_method,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types": ["code"],
        "scope": SCOPE,
        **extra,
    }


CONFIG: dict[str, Any] = {
    "clients": [
        _client("basic-client", "client_secret_basic", client_secret=TRICKY_SECRET),
        _client("post-client", "client_secret_post", client_secret="post-secret"),
        _client("jwt-client", "private_key_jwt", jwks={"keys": [_public_jwk(_JWT_KEY)]}),
    ],
    "pkceRequired": True,
    "rotateRefreshToken": True,
    "accessTokenTTL": 2,
    "refreshTokenTTL": 3600,
}

oidc = oidc_peer_fixture(CONFIG, scope="module")


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: the default jar drops cookies set by an IP address such as 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def basic_auth(client_id: str, client_secret: str) -> str:
    """RFC 6749 2.3.1: form-urlencode id and secret, then base64 `id:secret`."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


def authorize_url(peer: OidcPeer, client_id: str, state: str, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": state,
        "prompt": "consent",
        **params,
    }
    return f"{peer.authorization_endpoint}?{urlencode(query)}"


def at_redirect_uri(location: str) -> bool:
    return location.startswith(REDIRECT_URI)


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def post_token(
    session: aiohttp.ClientSession,
    peer: OidcPeer,
    form: dict[str, str],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with session.post(peer.token_endpoint, data=form, headers=headers or {}) as resp:
        return resp.status, json.loads(await resp.text())


async def authorize(
    session: aiohttp.ClientSession, peer: OidcPeer, client_id: str, **params: str
) -> tuple[dict[str, str], str]:
    """Run the browser part with PKCE S256; returns the callback query and the verifier."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorize_url(
        peer, client_id, state, code_challenge=challenge, code_challenge_method="S256", **params
    )
    location = await drive_browser(session, url, stop_when=at_redirect_uri)
    query = query_of(location)
    assert query.get("state") == state
    return query, verifier


async def code_tokens(session: aiohttp.ClientSession, peer: OidcPeer) -> dict[str, Any]:
    """A full code flow for basic-client; returns the token response."""
    query, verifier = await authorize(session, peer, "basic-client")
    status, body = await post_token(
        session,
        peer,
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        {"Authorization": basic_auth("basic-client", TRICKY_SECRET)},
    )
    assert status == 200, body
    return body


async def refresh(
    session: aiohttp.ClientSession, peer: OidcPeer, refresh_token: str
) -> tuple[int, dict[str, Any]]:
    return await post_token(
        session,
        peer,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        {"Authorization": basic_auth("basic-client", TRICKY_SECRET)},
    )


def test_discovery(oidc: OidcPeer) -> None:
    doc = oidc.discovery
    assert doc["issuer"] == oidc.issuer
    assert oidc.issuer.startswith("http://127.0.0.1:")
    assert oidc.authorization_endpoint == oidc.issuer + "/auth"
    assert oidc.token_endpoint == oidc.issuer + "/token"
    assert oidc.revocation_endpoint == oidc.issuer + "/token/revocation"
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "S256" in doc["code_challenge_methods_supported"]
    assert {"client_credentials", "refresh_token"} <= set(doc["grant_types_supported"])


async def test_code_flow_basic_auth_pkce(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    query, verifier = await authorize(browser, oidc, "basic-client")
    assert query["iss"] == oidc.issuer  # RFC 9207, sent without being asked for
    assert query["code"]

    form = {
        "grant_type": "authorization_code",
        "code": query["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    # the raw secret in the Basic header (what authlib sends) is not the client's secret
    raw = "Basic " + base64.b64encode(f"basic-client:{TRICKY_SECRET}".encode()).decode()
    status, body = await post_token(browser, oidc, form, {"Authorization": raw})
    assert (status, body["error"]) == (401, "invalid_client")

    status, body = await post_token(
        browser, oidc, form, {"Authorization": basic_auth("basic-client", TRICKY_SECRET)}
    )
    assert status == 200, body
    assert body["access_token"] and body["refresh_token"] and body["id_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 2
    assert set(body["scope"].split()) == {"openid", "offline_access"}


async def test_code_flow_client_secret_post(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    query, verifier = await authorize(browser, oidc, "post-client")
    status, body = await post_token(
        browser,
        oidc,
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": "post-client",
            "client_secret": "post-secret",
        },
    )
    assert status == 200, body
    assert body["access_token"] and body["refresh_token"]


async def test_no_refresh_token_without_prompt_consent(
    oidc: OidcPeer, browser: aiohttp.ClientSession
) -> None:
    query, verifier = await authorize(browser, oidc, "post-client", prompt="login")
    status, body = await post_token(
        browser,
        oidc,
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": "post-client",
            "client_secret": "post-secret",
        },
    )
    assert status == 200, body
    assert "refresh_token" not in body
    assert body["scope"] == "openid"


async def test_rotation_and_reuse_revokes_grant(
    oidc: OidcPeer, browser: aiohttp.ClientSession
) -> None:
    first = await code_tokens(browser, oidc)

    status, second = await refresh(browser, oidc, first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 2

    status, body = await refresh(browser, oidc, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    # the reuse revoked the whole grant: the rotated token is dead too
    status, body = await refresh(browser, oidc, second["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_access_token_ttl_is_honoured(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    tokens = await code_tokens(browser, oidc)
    userinfo = oidc.discovery["userinfo_endpoint"]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with browser.get(userinfo, headers=headers) as resp:
        assert resp.status == 200
    await asyncio.sleep(2.2)
    async with browser.get(userinfo, headers=headers) as resp:
        assert resp.status == 401


async def test_revocation(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    tokens = await code_tokens(browser, oidc)
    auth = {"Authorization": basic_auth("basic-client", TRICKY_SECRET)}
    form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    async with browser.post(oidc.revocation_endpoint, data=form, headers=auth) as resp:
        assert resp.status == 200
    status, body = await refresh(browser, oidc, tokens["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_pkce_required(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    url = authorize_url(oidc, "basic-client", "some-state")
    location = await drive_browser(browser, url, stop_when=at_redirect_uri)
    query = query_of(location)
    assert query["error"] == "invalid_request"
    assert "PKCE" in query["error_description"]
    assert query["state"] == "some-state"
    assert query["iss"] == oidc.issuer


async def test_client_credentials(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    status, body = await post_token(
        browser,
        oidc,
        {"grant_type": "client_credentials"},
        {"Authorization": basic_auth("basic-client", TRICKY_SECRET)},
    )
    assert status == 200, body
    assert body["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 2
    assert "refresh_token" not in body


def _client_assertion(client_id: str, audience: str) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": "jwt-client-key"}
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = _JWT_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


async def test_private_key_jwt(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "jwt-client",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _client_assertion("jwt-client", oidc.issuer),
    }
    status, body = await post_token(browser, oidc, form)
    assert status == 200, body
    assert body["access_token"]

    # a replayed assertion (same jti) is refused
    status, body = await post_token(browser, oidc, form)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_stats_count_token_requests(oidc: OidcPeer, browser: aiohttp.ClientSession) -> None:
    tokens = await code_tokens(browser, oidc)
    oidc.reset_stats()
    assert oidc.stats() == {"token": {}, "token_errors": {}, "authorization": 0, "revocation": 0}

    status, _ = await refresh(browser, oidc, tokens["refresh_token"])
    assert status == 200
    await refresh(browser, oidc, tokens["refresh_token"])  # reuse: refused
    await post_token(
        browser,
        oidc,
        {"grant_type": "client_credentials"},
        {"Authorization": basic_auth("basic-client", TRICKY_SECRET)},
    )

    stats = oidc.stats()
    assert stats["token"] == {"refresh_token": 2, "client_credentials": 1}
    assert stats["token_errors"] == {"refresh_token": 1}
    assert oidc.token_requests("refresh_token") == 2
    assert oidc.token_requests("authorization_code") == 0
