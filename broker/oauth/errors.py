"""Errors of the OAuth protocol layer, on top of `broker.errors` so HTTP statuses come free.

    ProviderError (broker.errors)          502 provider_error
    └── OAuthError                         502 provider_error  .error .description .transient
        ├── TransientProviderError         502 provider_error  5xx, 429, 408: back off, retry
        │                                                      (not before .retry_after)
        ├── MalformedTokenResponse         502 provider_error  not JSON, no access_token, ...
        ├── TokenEndpointError             502 provider_error  the endpoint said error=<code>
        │   ├── InvalidGrant               400 invalid_grant   code or refresh token is dead
        │   └── InvalidClient              502 provider_error  client credentials refused
        └── AuthorizationResponseError     400 invalid_callback  unusable redirect back
            ├── AuthorizationDenied        400 authorization_denied  error=<code> on the redirect
            └── IssuerMismatch             400 issuer_mismatch  RFC 9207 `iss` missing or wrong
    InvalidRequest (broker.errors)
    └── ClientCredentialsError             400 invalid_client_credentials  unusable secret/key

Provider text (error codes, descriptions) is untrusted and may echo what we sent, so it
goes through `scrub` before it reaches a message; response bodies never do.

Ours: authlib's rfc6749 errors are its server's (they render answers), and its clients raise
one OAuthError that keeps the provider's text as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from broker.errors import InvalidRequest, ProviderError

REDACTED = "[redacted]"
# RFC 6749 5.2: `error` is NQSCHAR (printable ASCII without `"` and `\`)
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]{1,64}")
_TRIM = ".,;:!?'\"()[]{}<>"


def _looks_secret(word: str) -> bool:
    # tokens and codes are long runs with digits and letters; prose words are not
    core = word.strip(_TRIM)
    if len(core) >= 32:
        return True
    has_digit = any(c.isdigit() for c in core)
    has_alpha = any(c.isalpha() for c in core)
    return len(core) >= 16 and has_digit and has_alpha


def scrub(text: object, redact: Iterable[str] = (), limit: int = 200) -> str | None:
    """Provider text made fit for a message: known values and token-like words masked,
    control characters dropped (no log injection), length capped. Non-strings give None."""
    if not isinstance(text, str):
        return None
    for value in redact:
        if len(value) >= 6:  # shorter ones would shred prose and protect nothing
            text = text.replace(value, REDACTED)
    words = [REDACTED if _looks_secret(w) else w for w in text.split()]
    cleaned = "".join(c for c in " ".join(words) if c.isprintable())
    if not cleaned:
        return None
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def safe_error_code(value: object) -> str | None:
    """The OAuth `error` value if it is a well-formed code, else None (never echo junk)."""
    if isinstance(value, str) and _ERROR_CODE.fullmatch(value) and not _looks_secret(value):
        return value
    return None


class OAuthError(ProviderError):
    """Base of every OAuth protocol failure. `error` is the provider's OAuth code, if any."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        description: str | None = None,
        provider_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description
        self.provider_status = provider_status
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (its `Retry-After`), when it said."""


class TransientProviderError(OAuthError):
    """RFC 6749 5.2 has no code for it: 5xx, 429, 408 or `temporarily_unavailable`.
    Callers back off and keep serving the old token while it is valid (DESIGN 5)."""

    transient = True


class MalformedTokenResponse(OAuthError):
    """A response that is not a usable RFC 6749 5.1 answer; the message says why."""


class TokenEndpointError(OAuthError):
    """RFC 6749 5.2 / RFC 7009 2.2.1: the endpoint answered with `error=<code>`."""


class InvalidGrant(TokenEndpointError):
    """The code or refresh token is expired, used or revoked: the user must reauthorize."""

    code = "invalid_grant"
    status = 400


class InvalidClient(TokenEndpointError):
    """The provider refused our client credentials: the OAuth app record needs fixing."""


class AuthorizationResponseError(OAuthError):
    """RFC 6749 4.1.2: the redirect back from the provider cannot be used."""

    code = "invalid_callback"
    status = 400


class AuthorizationDenied(AuthorizationResponseError):
    """RFC 6749 4.1.2.1: the provider redirected back with `error=<code>` (access_denied,
    invalid_scope, ...). The service passes `error` on as `?status=error&error=<code>`."""

    code = "authorization_denied"

    def __init__(self, message: str, *, error: str | None, description: str | None) -> None:
        super().__init__(message, error=error, description=description)
        self.transient = error in {"server_error", "temporarily_unavailable"}


class IssuerMismatch(AuthorizationResponseError):
    """RFC 9207 2.4: `iss` is not the expected issuer, or missing when one is expected
    (a mix-up attack sends the victim's code to the wrong token endpoint)."""

    code = "issuer_mismatch"


class ClientCredentialsError(InvalidRequest):
    """The stored client secret or private key cannot be used for the configured method."""

    code = "invalid_client_credentials"


_BY_CODE: dict[str, type[OAuthError]] = {
    "invalid_grant": InvalidGrant,
    "bad_verification_code": InvalidGrant,  # GitHub, answered with HTTP 200
    "bad_refresh_token": InvalidGrant,  # GitHub
    "invalid_client": InvalidClient,
    "incorrect_client_credentials": InvalidClient,  # GitHub
    "temporarily_unavailable": TransientProviderError,
    "server_error": TransientProviderError,
}


def endpoint_error(
    endpoint: str,
    error: object,
    description: object,
    *,
    provider_status: int,
    redact: Iterable[str] = (),
) -> OAuthError:
    """The typed error for an RFC 6749 5.2 error object from `endpoint` ("token", ...)."""
    redact = tuple(redact)
    code = safe_error_code(error)
    desc = scrub(description, redact)
    if isinstance(error, dict) and desc is None:  # {"error": {"message": ...}} (Graph APIs)
        desc = scrub(error.get("message"), redact)
    cls = _BY_CODE.get(code or "", TokenEndpointError)
    message = f"{endpoint} endpoint answered HTTP {provider_status} with error " + (
        code or "(unnamed)"
    )
    if desc:
        message += f": {desc}"
    return cls(message, error=code, description=desc, provider_status=provider_status)
