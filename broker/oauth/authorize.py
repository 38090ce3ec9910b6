"""RFC 6749 4.1.1/4.1.2 authorization request and response, with RFC 9207 `iss`.

The URL is authlib's `rfc6749.parameters.prepare_grant_uri`; the response parser is ours
(see `parse_authorization_response`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri

from broker.oauth.errors import (
    AuthorizationDenied,
    AuthorizationResponseError,
    IssuerMismatch,
    safe_error_code,
    scrub,
)
from broker.oauth.pkce import S256

# Parameters the broker sets itself; a manifest's authorizationParams may not override them
# (a fixed `state` or `redirect_uri` would defeat CSRF protection or leak the code).
RESERVED_AUTHORIZATION_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)


def create_state() -> str:
    """RFC 6749 10.12: an unguessable, one-time value; 256 bits, URL-safe (DESIGN 6).

    Ours: authlib's rfc6749 has no state helper (its clients draw 30 characters inline)."""
    return secrets.token_urlsafe(32)


def prepare_authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    scope_separator: str = " ",
    state: str,
    code_challenge: str | None = None,
    extra_params: Mapping[str, str] | None = None,
) -> str:
    """RFC 6749 4.1.1 URL the browser is sent to, by authlib's prepare_grant_uri.

    Ours around it: the reserved names, the refused fragment, `scope_separator` (authlib
    joins a list with spaces only), the endpoint's own query (3.1: it MUST be retained;
    authlib keeps it but adds ours beside it, so ours wins here by dropping the endpoint's
    copy of a name we set), and `extra_params` added after (as keyword arguments a name
    like `uri` would collide with prepare_grant_uri's own)."""
    extra = dict(extra_params or {})
    clash = sorted(RESERVED_AUTHORIZATION_PARAMS & extra.keys())
    if clash:
        raise ValueError(f"authorization params may not set {', '.join(clash)}")
    parts = urlsplit(endpoint)
    if parts.fragment:
        raise ValueError("an authorization endpoint has no fragment (RFC 6749 3.1)")
    scope = scope_separator.join(scopes) or None
    ours = {"response_type", "client_id", "redirect_uri", "state", *extra}
    if scope:
        ours.add("scope")
    if code_challenge is not None:
        ours |= {"code_challenge", "code_challenge_method"}
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), ""))
    url: str = prepare_grant_uri(
        base,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        code_challenge=code_challenge,
        code_challenge_method=S256 if code_challenge is not None else None,
    )
    if extra:
        url = add_params_to_uri(url, list(extra.items()))
    return url


@dataclass(frozen=True)
class AuthorizationResponse:
    """The useful part of a redirect back (RFC 6749 4.1.2). The service checks `state`
    against its store; the code never appears in repr or logs."""

    code: str = field(repr=False)
    state: str | None
    iss: str | None


_SINGLE = ("code", "state", "iss", "error", "error_description")


def _single_values(params: Mapping[str, str]) -> dict[str, str]:
    # A multidict (aiohttp's request.query) yields repeated names from items(); RFC 6749
    # 3.1 forbids repeats, and a second `code` or `iss` is how a mix-up gets smuggled in.
    seen: dict[str, str] = {}
    for key, value in params.items():
        if key in _SINGLE:
            if key in seen:
                raise AuthorizationResponseError(
                    f"authorization response repeats the parameter {key!r}"
                )
            seen[key] = value
    return seen


def parse_authorization_response(
    params: Mapping[str, str], *, expected_issuer: str | None
) -> AuthorizationResponse:
    """RFC 6749 4.1.2 / 4.1.2.1 redirect back, with RFC 9207 2.4: the issuer is checked
    first, on error responses too, and a missing `iss` is refused when one is expected.

    Ours: authlib's parse_authorization_code_response keeps the last of repeated names
    (a smuggled second `code` or `iss` goes unseen), answers an error redirect with
    MissingCodeException instead of the provider's `error`, and authlib's rfc9207 is the
    server side only (it adds `iss`; nothing checks it)."""
    values = _single_values(params)
    iss = values.get("iss")
    if expected_issuer is not None:
        if iss is None:
            raise IssuerMismatch("authorization response has no iss but the issuer is known")
        if iss != expected_issuer:  # RFC 9207 2.4: simple string comparison
            raise IssuerMismatch("authorization response comes from an unexpected issuer")
    code = values.get("code")
    if "error" in values:
        error = safe_error_code(values["error"])
        redact = [v for v in (code, values.get("state")) if v]
        description = scrub(values.get("error_description"), redact)
        message = f"the provider refused the authorization: {error or '(unnamed error)'}"
        if description:
            message += f" ({description})"
        raise AuthorizationDenied(message, error=error, description=description)
    if not code:
        raise AuthorizationResponseError("authorization response carries no code")
    return AuthorizationResponse(code=code, state=values.get("state"), iss=iss)
