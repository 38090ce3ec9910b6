"""RFC 6749 5.1/5.2 token responses, and what real providers send instead."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.oauth import (
    InvalidClient,
    InvalidGrant,
    MalformedTokenResponse,
    OAuthError,
    TokenEndpointError,
    TokenSet,
    TransientProviderError,
    parse_revocation_response,
    parse_token_response,
)

JSON = "application/json; charset=utf-8"
SENT = 1_700_000_000.0
CANARY = "tok_CANARY_9f8e7d6c5b4a39281706"


def _parse(body: Any, *, status: int = 200, content_type: str | None = JSON, **kw: Any) -> TokenSet:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_token_response(status, content_type, raw, sent_at=SENT, **kw)


def test_normal_response() -> None:
    tokens = _parse(
        {
            "access_token": "at",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "rt",
            "scope": "openid offline_access",
            "id_token": "idt",
        }
    )
    assert tokens == TokenSet(
        access_token="at",
        token_type="Bearer",
        refresh_token="rt",
        expires_at=SENT + 3600,
        scopes=["openid", "offline_access"],
        id_token="idt",
        extra={},
    )
    assert "at" not in repr(tokens).replace("expires_at", "").replace("token_type", "")


def test_expires_in_as_string() -> None:
    assert _parse({"access_token": "at", "expires_in": "7200"}).expires_at == SENT + 7200


def test_missing_expires_in_uses_the_default_or_none() -> None:
    assert _parse({"access_token": "at"}, default_expires_in=1800).expires_at == SENT + 1800
    assert _parse({"access_token": "at"}).expires_at is None


@pytest.mark.parametrize("value", ["soon", -5, True, [1], "1e3"])
def test_bad_expires_in_is_malformed(value: object) -> None:
    with pytest.raises(MalformedTokenResponse, match="expires_in"):
        _parse({"access_token": "at", "expires_in": value})


def test_refresh_token_kept_when_none_returned() -> None:
    assert _parse({"access_token": "at"}, previous_refresh_token="old").refresh_token == "old"
    rotated = _parse({"access_token": "at", "refresh_token": "new"}, previous_refresh_token="old")
    assert rotated.refresh_token == "new"
    assert _parse({"access_token": "at"}).refresh_token is None


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("a b", ["a", "b"]),
        ("repo,user", ["repo", "user"]),  # GitHub
        ("a, b  c", ["a", "b", "c"]),
        (["x", "y"], ["x", "y"]),
        ("", ["req1", "req2"]),
        (None, ["req1", "req2"]),
    ],
)
def test_scope_parsing(scope: object, expected: list[str]) -> None:
    body: dict[str, object] = {"access_token": "at"}
    if scope is not None:
        body["scope"] = scope
    assert _parse(body, requested_scopes=["req1", "req2"]).scopes == expected


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer", None])
def test_bearer_in_any_case_or_missing_is_bearer(token_type: str | None) -> None:
    body: dict[str, object] = {"access_token": "at"}
    if token_type is not None:
        body["token_type"] = token_type
    assert _parse(body).token_type == "Bearer"


def test_other_token_types_are_refused_unless_declared() -> None:
    with pytest.raises(MalformedTokenResponse, match="token_type"):
        _parse({"access_token": "at", "token_type": "mac"})
    slack = _parse({"access_token": "xoxb", "token_type": "bot"}, bearer_aliases=["bot"])
    assert slack.token_type == "Bearer"


def test_extra_keeps_non_secret_fields_and_drops_secret_ones() -> None:
    tokens = _parse(
        {
            "ok": True,
            "access_token": "xoxb-1",
            "token_type": "bot",
            "instance_url": "https://na1.salesforce.com",
            "signature": "sig",
            "team": {"id": "T1", "name": "Acme"},
            "authed_user": {"id": "U1", "access_token": "xoxp-1", "token_type": "user"},
            "incoming_webhook": {"url": "https://hooks.slack.com/services/secret"},
            "client_secret": "cs",
            "x_refresh_token_expires_in": 8726400,
            "mirror": "xoxb-1",
        },
        bearer_aliases=["bot"],
    )
    assert tokens.extra == {
        "ok": True,
        "instance_url": "https://na1.salesforce.com",
        "team": {"id": "T1", "name": "Acme"},
        "authed_user": {"id": "U1", "token_type": "user"},
        "x_refresh_token_expires_in": 8726400,
    }


# --- errors -----------------------------------------------------------------------------


def test_400_invalid_grant() -> None:
    with pytest.raises(InvalidGrant) as caught:
        _parse({"error": "invalid_grant", "error_description": "Token expired"}, status=400)
    error = caught.value
    assert (error.error, error.description, error.provider_status) == (
        "invalid_grant",
        "Token expired",
        400,
    )
    assert not error.transient
    assert "invalid_grant" in str(error) and "Token expired" in str(error)


def test_401_invalid_client() -> None:
    with pytest.raises(InvalidClient) as caught:
        _parse({"error": "invalid_client"}, status=401)
    assert caught.value.error == "invalid_client"
    with pytest.raises(InvalidClient):
        _parse(b"", status=401, content_type=None)


@pytest.mark.parametrize(
    "error", ["unauthorized_client", "invalid_scope", "unsupported_grant_type"]
)
def test_other_oauth_errors_carry_their_code(error: str) -> None:
    with pytest.raises(TokenEndpointError) as caught:
        _parse({"error": error}, status=400)
    assert caught.value.error == error
    assert type(caught.value) is TokenEndpointError


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_transient_statuses(status: int) -> None:
    with pytest.raises(TransientProviderError) as caught:
        _parse(b"<html>Bad gateway</html>", status=status, content_type="text/html")
    assert caught.value.transient
    assert caught.value.provider_status == status
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100.0),  # RFC 9110 10.2.3: an HTTP-date
        ("Tue, 14 Nov 2023 22:11:00 GMT", 0.0),  # already past
        (None, None),
        ("soon", None),  # unreadable: no pause rather than a guess
        ("-5", None),
        ("1.5", None),
        ("\u00b2", None),  # a digit to str.isdigit, not to HTTP
    ],
)
def test_a_transient_answer_carries_the_providers_retry_after(
    header: str | None, seconds: float | None
) -> None:
    with pytest.raises(TransientProviderError) as caught:
        _parse(b"slow down", status=429, content_type="text/plain", retry_after=header)
    assert caught.value.retry_after == seconds


def test_retry_after_on_a_usable_answer_changes_nothing() -> None:
    tokens = _parse({"access_token": "at", "token_type": "Bearer"}, retry_after="30")
    assert tokens.access_token == "at"


def test_temporarily_unavailable_code_is_transient() -> None:
    with pytest.raises(TransientProviderError):
        _parse({"error": "temporarily_unavailable"}, status=400)


def test_github_200_with_error() -> None:
    body = {
        "error": "bad_verification_code",
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/troubleshooting",
    }
    with pytest.raises(InvalidGrant) as caught:
        _parse(body, status=200)
    assert caught.value.error == "bad_verification_code"


def test_slack_200_with_ok_false() -> None:
    with pytest.raises(TokenEndpointError) as caught:
        _parse({"ok": False, "error": "invalid_code"})
    assert caught.value.error == "invalid_code"


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (f"<html><body>{CANARY}</body></html>".encode(), "text/html", "an HTML page"),
        (
            f"access_token={CANARY}&x=".encode(),
            "application/x-www-form-urlencoded",
            "not valid JSON",
        ),
        (f'{{"access_token": "{CANARY}"'.encode(), JSON, "not valid JSON"),
        (json.dumps([{"access_token": CANARY}]).encode(), JSON, "a JSON array"),
        (json.dumps({"refresh_token": CANARY}).encode(), JSON, "no access_token"),
        (json.dumps({"access_token": CANARY, "token_type": "N_A"}).encode(), JSON, "token_type"),
        (json.dumps({"access_token": CANARY, "expires_in": CANARY}).encode(), JSON, "expires_in"),
        (json.dumps({"access_token": 12345}).encode(), JSON, "access_token"),
        (b"\xff\xfe", None, "not valid JSON"),
    ],
)
def test_malformed_responses_say_why_without_quoting_the_body(
    body: bytes, content_type: str | None, problem: str
) -> None:
    with pytest.raises(MalformedTokenResponse) as caught:
        _parse(body, content_type=content_type)
    assert problem in str(caught.value)
    assert CANARY not in str(caught.value)
    assert caught.value.status == 502 and not caught.value.transient


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 500])
def test_canary_never_reaches_a_message(status: int) -> None:
    bodies = [
        {"error": "invalid_grant", "error_description": f"refresh token {CANARY} is revoked"},
        {"error": CANARY},
        {"error": "invalid_request", "error_description": "bad", "refresh_token": CANARY},
        {"error": {"message": f"Error validating access token {CANARY}", "code": 190}},
    ]
    for body in bodies:
        with pytest.raises(OAuthError) as caught:
            _parse(body, status=status)
        text = f"{caught.value} {caught.value.error} {caught.value.description}"
        assert CANARY not in text


def test_values_we_sent_are_redacted_even_when_short_and_plain() -> None:
    with pytest.raises(InvalidGrant) as caught:
        _parse(
            {"error": "invalid_grant", "error_description": "code abcdefgh already used"},
            status=400,
            redact=["abcdefgh"],
        )
    assert "abcdefgh" not in str(caught.value)
    assert "already used" in str(caught.value)


def test_previous_refresh_token_is_redacted_from_descriptions() -> None:
    with pytest.raises(InvalidGrant) as caught:
        _parse(
            {"error": "invalid_grant", "error_description": "grant oldrefresh was revoked"},
            status=400,
            previous_refresh_token="oldrefresh",
        )
    assert "oldrefresh" not in str(caught.value)


def test_4xx_without_an_oauth_error_is_malformed() -> None:
    with pytest.raises(MalformedTokenResponse, match="HTTP 404 without an OAuth error"):
        _parse(b"<html>not found</html>", status=404, content_type="text/html")


DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP,
        b'{"a":' * DEEP,
        b"[" * DEEP + b"]" * DEEP,  # well-formed, just deeper than the decoder goes
        b'{"access_token": "at", "extra": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    ],
)
@pytest.mark.parametrize("status", [200, 400])
def test_json_nested_past_the_decoders_depth_is_malformed(body: bytes, status: int) -> None:
    """The decoder's RecursionError used to escape and kill the background refresher."""
    with pytest.raises(MalformedTokenResponse) as caught:
        _parse(body, status=status)
    assert "not valid JSON" in str(caught.value) or "without an OAuth error" in str(caught.value)
    assert caught.value.provider_status == status


def test_revocation_answer_nested_past_the_decoders_depth_is_malformed() -> None:
    with pytest.raises(MalformedTokenResponse):
        parse_revocation_response(400, JSON, b"[" * DEEP)
