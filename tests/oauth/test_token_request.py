"""RFC 6749 4.1.3, 4.4.2, 6 and RFC 7009 2.1: the POSTs the service sends."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from broker.oauth import (
    ClientAuth,
    basic_authorization_header,
    parse_revocation_response,
    prepare_authorization_code_request,
    prepare_client_credentials_request,
    prepare_refresh_request,
    prepare_revocation_request,
)
from broker.oauth.errors import TokenEndpointError, TransientProviderError

URL = "https://login.example/oauth/token"
BASIC = ClientAuth("client_secret_basic", "app id", client_secret="p@ss:w+rd%2F&x")
POST = ClientAuth("client_secret_post", "app", client_secret="s3cret")
FORM = "application/x-www-form-urlencoded"


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), strict_parsing=True))


def test_code_request_with_basic_auth_and_pkce() -> None:
    request = prepare_authorization_code_request(
        URL, client=BASIC, code="c/1+2", redirect_uri="https://b.example/cb", code_verifier="v" * 43
    )
    assert (request.method, request.url) == ("POST", URL)
    assert request.headers == {
        "Accept": "application/json",
        "Content-Type": FORM,
        "Authorization": basic_authorization_header("app id", "p@ss:w+rd%2F&x"),
    }
    assert _form(request.body) == {
        "grant_type": "authorization_code",
        "code": "c/1+2",
        "redirect_uri": "https://b.example/cb",
        "code_verifier": "v" * 43,
    }
    assert b"c%2F1%2B2" in request.body
    assert "p@ss" not in repr(request) and "c/1+2" not in repr(request)


def test_code_request_without_pkce_and_with_post_auth_and_token_params() -> None:
    request = prepare_authorization_code_request(
        URL,
        client=POST,
        code="c",
        redirect_uri="https://b.example/cb",
        extra_params={"audience": "api://x"},
    )
    assert "Authorization" not in request.headers
    assert _form(request.body) == {
        "grant_type": "authorization_code",
        "code": "c",
        "redirect_uri": "https://b.example/cb",
        "client_id": "app",
        "client_secret": "s3cret",
        "audience": "api://x",
    }


def test_json_encoding_for_notion() -> None:
    request = prepare_authorization_code_request(
        URL, client=BASIC, code="c", redirect_uri="https://b.example/cb", encoding="json"
    )
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert json.loads(request.body) == {
        "grant_type": "authorization_code",
        "code": "c",
        "redirect_uri": "https://b.example/cb",
    }


def test_refresh_request_leaves_scope_out_unless_asked() -> None:
    request = prepare_refresh_request(URL, client=POST, refresh_token="rt-1")
    assert _form(request.body) == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "client_id": "app",
        "client_secret": "s3cret",
    }
    narrowed = prepare_refresh_request(URL, client=POST, refresh_token="rt", scopes=["a", "b"])
    assert _form(narrowed.body)["scope"] == "a b"


def test_client_credentials_request_sends_scopes_with_the_separator() -> None:
    request = prepare_client_credentials_request(
        URL, client=BASIC, scopes=["read", "write"], scope_separator=","
    )
    assert _form(request.body) == {"grant_type": "client_credentials", "scope": "read,write"}
    bare = prepare_client_credentials_request(URL, client=BASIC)
    assert _form(bare.body) == {"grant_type": "client_credentials"}


@pytest.mark.parametrize("name", ["grant_type", "code", "client_secret", "client_assertion"])
def test_token_params_cannot_override_the_grant_or_credentials(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        prepare_authorization_code_request(
            URL, client=BASIC, code="c", redirect_uri="r", extra_params={name: "x"}
        )


def test_token_params_cannot_override_post_client_id() -> None:
    with pytest.raises(ValueError, match="client_id"):
        prepare_refresh_request(
            URL, client=POST, refresh_token="r", extra_params={"client_id": "x"}
        )


# --- RFC 7009 ---------------------------------------------------------------------------


def test_revocation_request() -> None:
    request = prepare_revocation_request(
        "https://login.example/revoke", client=BASIC, token="rt-9", token_type_hint="refresh_token"
    )
    assert request.url == "https://login.example/revoke"
    assert request.headers["Content-Type"] == FORM
    assert request.headers["Authorization"].startswith("Basic ")
    assert _form(request.body) == {"token": "rt-9", "token_type_hint": "refresh_token"}
    plain = prepare_revocation_request("https://login.example/revoke", client=POST, token="t")
    assert _form(plain.body) == {"token": "t", "client_id": "app", "client_secret": "s3cret"}


@pytest.mark.parametrize("status", [200, 204])
def test_revocation_success(status: int) -> None:
    parse_revocation_response(status, "application/json", b"")


@pytest.mark.parametrize("status", [503, 500, 429])
def test_revocation_transient(status: int) -> None:
    with pytest.raises(TransientProviderError):
        parse_revocation_response(status, None, b"")


def test_revocation_error_carries_the_code() -> None:
    body = b'{"error": "unsupported_token_type"}'
    with pytest.raises(TokenEndpointError) as caught:
        parse_revocation_response(400, "application/json", body)
    assert caught.value.error == "unsupported_token_type"
    assert "revocation endpoint" in str(caught.value)
