"""RFC 7009 token revocation: request (2.1, authlib's `rfc7009.prepare_revoke_token_request`)
and response (2.2, 2.2.1, ours)."""

from __future__ import annotations

from typing import Literal

from authlib.oauth2.rfc7009 import prepare_revoke_token_request

from broker.oauth._response import raise_for_status
from broker.oauth.client_auth import ClientAuth
from broker.oauth.token import TokenRequest, build_request

TokenTypeHint = Literal["access_token", "refresh_token"]


def prepare_revocation_request(
    url: str,
    *,
    client: ClientAuth,
    token: str,
    token_type_hint: TokenTypeHint | None = None,
    now: float | None = None,
) -> TokenRequest:
    """RFC 7009 2.1: always form-encoded. Revoking the refresh token should also end the
    access tokens of its grant (2.1), so callers pass it when they have one."""
    # its headers hold only the form Content-Type, which build_request sets too
    params: str = prepare_revoke_token_request(token, token_type_hint)[0]
    return build_request(url, params, client=client, now=now)


def parse_revocation_response(
    status: int, content_type: str | None = None, body: bytes = b""
) -> None:
    """RFC 7009 2.2: 200 means revoked (or already invalid); 503 means try again
    (TransientProviderError); anything else raises the typed OAuth error.

    Ours: authlib's clients hand back the raw response; nothing there parses it."""
    raise_for_status("revocation", status, content_type, body)
