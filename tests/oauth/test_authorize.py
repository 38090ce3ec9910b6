"""RFC 6749 4.1.1/4.1.2 and RFC 9207: the authorize URL and the redirect back."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from multidict import MultiDict

from broker.oauth import (
    AuthorizationDenied,
    AuthorizationResponseError,
    IssuerMismatch,
    create_state,
    parse_authorization_response,
    prepare_authorization_url,
)


def _url(**overrides: object) -> str:
    args: dict[str, object] = {
        "client_id": "my app",
        "redirect_uri": "https://broker.example/oauth/callback/xero",
        "scopes": ["openid", "offline_access"],
        "state": "s-123",
    }
    args.update(overrides)
    endpoint = str(args.pop("endpoint", "https://login.example/authorize"))
    return prepare_authorization_url(endpoint, **args)  # type: ignore[arg-type]


def test_state_is_urlsafe_and_long() -> None:
    states = {create_state() for _ in range(50)}
    assert len(states) == 50
    for state in states:
        assert len(state) * 6 >= 128
        assert set(state) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_url_has_the_rfc_parameters() -> None:
    parts = urlsplit(_url(code_challenge="abc"))
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "login.example", "/authorize")
    assert dict(parse_qsl(parts.query)) == {
        "response_type": "code",
        "client_id": "my app",
        "redirect_uri": "https://broker.example/oauth/callback/xero",
        "state": "s-123",
        "scope": "openid offline_access",
        "code_challenge": "abc",
        "code_challenge_method": "S256",
    }


def test_values_are_encoded() -> None:
    url = _url(state="a&b=c", scopes=["x y"])
    assert "state=a%26b%3Dc" in url
    assert "client_id=my+app" in url
    assert "redirect_uri=https%3A%2F%2Fbroker.example%2Foauth%2Fcallback%2Fxero" in url


def test_no_challenge_no_method_and_no_scope_when_empty() -> None:
    query = parse_qs(urlsplit(_url(scopes=[])).query)
    assert "code_challenge" not in query
    assert "code_challenge_method" not in query
    assert "scope" not in query


def test_scope_separator_is_honoured() -> None:
    query = parse_qs(urlsplit(_url(scopes=["repo", "user"], scope_separator=",")).query)
    assert query["scope"] == ["repo,user"]


def test_endpoint_query_survives_and_ours_wins() -> None:
    url = _url(endpoint="https://x.example/oauth/authorize?tenant=abc&state=evil&x=")
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert pairs[:2] == [("tenant", "abc"), ("x", "")]
    assert [v for k, v in pairs if k == "state"] == ["s-123"]


def test_extra_params_are_added() -> None:
    query = parse_qs(
        urlsplit(_url(extra_params={"prompt": "consent", "access_type": "offline"})).query
    )
    assert query["prompt"] == ["consent"]
    assert query["access_type"] == ["offline"]


@pytest.mark.parametrize("name", ["state", "redirect_uri", "client_id", "code_challenge_method"])
def test_extra_params_cannot_override_ours(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        _url(extra_params={name: "x"})


def test_endpoint_with_fragment_is_refused() -> None:
    with pytest.raises(ValueError, match="fragment"):
        _url(endpoint="https://x.example/authorize#frag")


# --- the redirect back ------------------------------------------------------------------

ISSUER = "https://login.example"


def test_success_returns_code_state_iss_and_hides_the_code() -> None:
    response = parse_authorization_response(
        {"code": "the-code", "state": "s-1", "iss": ISSUER}, expected_issuer=ISSUER
    )
    assert (response.code, response.state, response.iss) == ("the-code", "s-1", ISSUER)
    assert "the-code" not in repr(response)


def test_no_issuer_configured_accepts_any_or_no_iss() -> None:
    assert parse_authorization_response({"code": "c"}, expected_issuer=None).iss is None
    assert parse_authorization_response({"code": "c", "iss": "x"}, expected_issuer=None).iss == "x"


@pytest.mark.parametrize("error", ["access_denied", "invalid_scope", "consent_required"])
def test_provider_error_is_denied_with_its_code(error: str) -> None:
    with pytest.raises(AuthorizationDenied) as caught:
        parse_authorization_response(
            {"error": error, "error_description": "The user said no", "state": "s"},
            expected_issuer=None,
        )
    assert caught.value.error == error
    assert caught.value.description == "The user said no"
    assert caught.value.status == 400
    assert error in str(caught.value) and "The user said no" in str(caught.value)
    assert not caught.value.transient


def test_server_error_on_the_redirect_is_transient() -> None:
    with pytest.raises(AuthorizationDenied) as caught:
        parse_authorization_response({"error": "temporarily_unavailable"}, expected_issuer=None)
    assert caught.value.transient


def test_error_message_never_contains_the_code() -> None:
    code = "SplxlOBeZQQYbYS6WxSbIA"
    with pytest.raises(AuthorizationDenied) as caught:
        parse_authorization_response(
            {"error": "invalid_request", "code": code, "error_description": f"bad code {code}"},
            expected_issuer=None,
        )
    assert code not in str(caught.value)
    assert code not in (caught.value.description or "")


def test_junk_error_code_is_not_echoed() -> None:
    with pytest.raises(AuthorizationDenied) as caught:
        parse_authorization_response({"error": 'x"\n<script>'}, expected_issuer=None)
    assert caught.value.error is None
    assert "<script>" not in str(caught.value)


def test_description_control_characters_are_dropped() -> None:
    with pytest.raises(AuthorizationDenied) as caught:
        parse_authorization_response(
            {"error": "access_denied", "error_description": "no\r\nFAKE LOG LINE"},
            expected_issuer=None,
        )
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


@pytest.mark.parametrize("params", [{}, {"state": "s"}, {"code": "", "state": "s"}])
def test_missing_code_is_refused(params: dict[str, str]) -> None:
    with pytest.raises(AuthorizationResponseError, match="no code") as caught:
        parse_authorization_response(params, expected_issuer=None)
    assert caught.value.status == 400


def test_iss_mismatch_is_refused() -> None:
    with pytest.raises(IssuerMismatch) as caught:
        parse_authorization_response(
            {"code": "c", "iss": "https://evil.example"}, expected_issuer=ISSUER
        )
    assert caught.value.code == "issuer_mismatch" and caught.value.status == 400


def test_iss_missing_is_refused_when_an_issuer_is_expected() -> None:
    with pytest.raises(IssuerMismatch, match="no iss"):
        parse_authorization_response({"code": "c"}, expected_issuer=ISSUER)


def test_iss_is_checked_before_the_error() -> None:
    # RFC 9207 2.4: a mixed-up error response must not be believed either
    with pytest.raises(IssuerMismatch):
        parse_authorization_response(
            {"error": "access_denied", "iss": "https://evil.example"}, expected_issuer=ISSUER
        )


def test_iss_comparison_is_exact() -> None:
    with pytest.raises(IssuerMismatch):
        parse_authorization_response({"code": "c", "iss": ISSUER + "/"}, expected_issuer=ISSUER)


@pytest.mark.parametrize("name", ["code", "iss", "state"])
def test_repeated_parameter_is_refused(name: str) -> None:
    query: MultiDict[str] = MultiDict([("code", "c"), ("state", "s"), ("iss", ISSUER)])
    query.add(name, "second")
    with pytest.raises(AuthorizationResponseError, match=f"repeats the parameter '{name}'"):
        parse_authorization_response(query, expected_issuer=ISSUER)
