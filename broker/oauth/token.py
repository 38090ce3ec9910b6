"""Token endpoint requests (RFC 6749 4.1.3, 4.4.2, 6; the grant's parameters by authlib's
`prepare_token_request`) and responses (5.1, 5.2). The service sends a `TokenRequest`, notes
`sent_at` just before, and hands status, Content-Type and body to `parse_token_response`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749.parameters import prepare_token_request

from broker.oauth._response import json_object, raise_for_status, retry_after_seconds
from broker.oauth.client_auth import ClientAuth, apply_client_auth
from broker.oauth.errors import MalformedTokenResponse, endpoint_error

BodyEncoding = Literal["form", "json"]

# Names a manifest's tokenParams may never set: they carry the grant or the credentials.
RESERVED_TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "token",
        "token_type_hint",
    }
)


@dataclass(frozen=True)
class TokenRequest:
    """An HTTP request for the service to send as is; headers and body hold secrets."""

    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    method: str = "POST"


def build_request(
    url: str,
    params: str,
    *,
    client: ClientAuth,
    extra_params: Mapping[str, str] | None = None,
    encoding: BodyEncoding = "form",
    now: float | None = None,
) -> TokenRequest:
    """`params` (the form body authlib prepared) + client authentication + `extra_params`
    as one POST (shared with RFC 7009).

    Ours: authlib writes form bodies only (Notion wants JSON) and drops empty values, which
    would silently lose an empty extra param a manifest sets."""
    parts = apply_client_auth(client, url, now=now)
    body_params = {**dict(parse_qsl(params, keep_blank_values=True)), **parts.params}
    extra = dict(extra_params or {})
    clash = sorted(extra.keys() & (RESERVED_TOKEN_PARAMS | body_params.keys()))
    if clash:
        raise ValueError(f"token params may not set {', '.join(clash)}")
    body_params.update(extra)
    headers = {"Accept": "application/json", **parts.headers}
    if encoding == "json":  # Notion wants JSON; RFC 6749 says form
        headers["Content-Type"] = "application/json"
        body = json.dumps(body_params).encode()
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urlencode(body_params).encode("ascii")
    return TokenRequest(url=url, headers=headers, body=body)


def _scope(scopes: Sequence[str] | None, separator: str) -> str | None:
    # authlib joins a list with spaces only; GitHub and Slack want commas (`scopeSeparator`)
    return separator.join(scopes) if scopes else None


def prepare_authorization_code_request(
    url: str,
    *,
    client: ClientAuth,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    extra_params: Mapping[str, str] | None = None,
    encoding: BodyEncoding = "form",
    now: float | None = None,
) -> TokenRequest:
    """RFC 6749 4.1.3 (+ RFC 7636 4.5 `code_verifier` when PKCE was used)."""
    params: str = prepare_token_request(
        "authorization_code", redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
    )
    return build_request(
        url, params, client=client, extra_params=extra_params, encoding=encoding, now=now
    )


def prepare_refresh_request(
    url: str,
    *,
    client: ClientAuth,
    refresh_token: str,
    scopes: Sequence[str] | None = None,
    scope_separator: str = " ",
    extra_params: Mapping[str, str] | None = None,
    encoding: BodyEncoding = "form",
    now: float | None = None,
) -> TokenRequest:
    """RFC 6749 6. `scopes` is usually left out: the grant keeps its original scope."""
    params: str = prepare_token_request(
        "refresh_token", refresh_token=refresh_token, scope=_scope(scopes, scope_separator)
    )
    return build_request(
        url, params, client=client, extra_params=extra_params, encoding=encoding, now=now
    )


def prepare_client_credentials_request(
    url: str,
    *,
    client: ClientAuth,
    scopes: Sequence[str] = (),
    scope_separator: str = " ",
    extra_params: Mapping[str, str] | None = None,
    encoding: BodyEncoding = "form",
    now: float | None = None,
) -> TokenRequest:
    """RFC 6749 4.4.2, for machine apps (`type: client_credentials`)."""
    params: str = prepare_token_request("client_credentials", scope=_scope(scopes, scope_separator))
    return build_request(
        url, params, client=client, extra_params=extra_params, encoding=encoding, now=now
    )


@dataclass(frozen=True)
class TokenSet:
    """RFC 6749 5.1, normalized. `extra` holds the provider's other non-secret fields
    (Salesforce `instance_url`, Slack `team`); tokens stay out of repr."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: list[str] = field(default_factory=list)
    id_token: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def expires_within(self, seconds: float, *, now: float) -> bool:
        """True when the access token lapses within `seconds` (never, if no expiry)."""
        return self.expires_at is not None and self.expires_at - now <= seconds


_KNOWN = frozenset(
    {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
)
# unknown fields whose name suggests a credential are dropped, whatever they hold
_SECRETISH = re.compile(
    r"token|secret|passw|key|code|assertion|credential|signature|session|cookie|webhook|"
    r"private|nonce",
    re.IGNORECASE,
)
_NOT_SECRET = frozenset({"token_type", "key_id"})
_MAX_DEPTH = 4
_DROP = object()


def _malformed(problem: str, status: int) -> MalformedTokenResponse:
    return MalformedTokenResponse(f"token response {problem}", provider_status=status)


def _expires_in(value: object, status: int) -> float | None:
    if value is None:
        return None
    seconds: float
    if isinstance(value, bool):
        raise _malformed("has an expires_in that is not a number", status)
    if isinstance(value, int | float):
        seconds = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        seconds = int(value)  # some providers (Facebook, older Azure) send a string
    else:
        raise _malformed("has an expires_in that is not a number", status)
    if not math.isfinite(seconds) or seconds < 0:
        raise _malformed("has a negative or infinite expires_in", status)
    return seconds


def _scopes(value: object, requested: Sequence[str], status: int) -> list[str]:
    if value is None or value == "":
        return list(requested)  # RFC 6749 5.1: omitted means "as requested"
    if isinstance(value, str):
        return [s for s in re.split(r"[\s,]+", value) if s]  # space per RFC; comma (GitHub)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise _malformed("has a scope that is neither a string nor a list of strings", status)


def _optional_str(data: Mapping[str, object], name: str, status: int) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _malformed(f"has a {name} that is not a string", status)
    return value


def _clean(value: object, secrets: Collection[str], depth: int = 0) -> object:
    """`value` without secret-looking keys and without our own token values, or _DROP."""
    if isinstance(value, str):
        return _DROP if value in secrets else value
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return _DROP
        out = {}
        for key, item in value.items():
            if (
                _SECRETISH.search(key)
                and key not in _NOT_SECRET
                and not isinstance(item, int | float | bool)
            ):
                continue  # e.g. Slack authed_user.access_token; numbers cannot be tokens
            cleaned = _clean(item, secrets, depth + 1)
            if cleaned is not _DROP:
                out[key] = cleaned
        return out
    if isinstance(value, list):
        if depth >= _MAX_DEPTH:
            return _DROP
        return [c for c in (_clean(i, secrets, depth + 1) for i in value) if c is not _DROP]
    return value


def parse_token_response(
    status: int,
    content_type: str | None,
    body: bytes,
    *,
    sent_at: float,
    default_expires_in: int | None = None,
    previous_refresh_token: str | None = None,
    requested_scopes: Sequence[str] = (),
    bearer_aliases: Collection[str] = (),
    redact: Sequence[str] = (),
    retry_after: str | None = None,
) -> TokenSet:
    """RFC 6749 5.1 / 5.2 answer -> TokenSet, or a typed OAuthError.

    `expires_at = sent_at + expires_in` (DESIGN 5): timing from the send, not the receipt,
    errs on the early side. `bearer_aliases` are token_type values a manifest declares to be
    bearer tokens in practice (Slack's "bot" and "user"). `redact` are values we sent
    (code, verifier) that must not surface if the provider echoes them in a description.
    `retry_after` is the answer's `Retry-After` header: a transient error carries it, in
    seconds from `sent_at` (a date is counted from the send, so the wait errs long).

    Ours: authlib parses a token response only inside its OAuth2Client (`resp.json()` on
    its own session), with untyped errors and `expires_at` from the receipt, not the send."""
    redact = [*redact, *([previous_refresh_token] if previous_refresh_token else [])]
    wait = retry_after_seconds(retry_after, sent_at)
    raise_for_status("token", status, content_type, body, redact=redact, retry_after=wait)
    data = json_object("token", status, content_type, body)
    if "error" in data:  # GitHub and Slack answer 200 with an error object
        raise endpoint_error(
            "token",
            data["error"],
            data.get("error_description"),
            provider_status=status,
            redact=redact,
        )
    access_token = _optional_str(data, "access_token", status)
    if access_token is None:
        raise _malformed("has no access_token", status)
    token_type = _optional_str(data, "token_type", status) or "bearer"
    aliases = {a.lower() for a in bearer_aliases}
    if token_type.lower() != "bearer" and token_type.lower() not in aliases:
        raise _malformed("has a token_type the broker cannot use (only Bearer)", status)
    expires_in = _expires_in(data.get("expires_in"), status)
    if expires_in is None:
        expires_in = default_expires_in
    refresh_token = _optional_str(data, "refresh_token", status) or previous_refresh_token
    id_token = _optional_str(data, "id_token", status)
    secrets = {t for t in (access_token, refresh_token, id_token) if t}
    extra = _clean({k: v for k, v in data.items() if k not in _KNOWN}, secrets)
    assert isinstance(extra, dict)
    return TokenSet(
        access_token=access_token,
        token_type="Bearer",
        refresh_token=refresh_token,
        expires_at=None if expires_in is None else sent_at + expires_in,
        scopes=_scopes(data.get("scope"), requested_scopes, status),
        id_token=id_token,
        extra=extra,
    )
