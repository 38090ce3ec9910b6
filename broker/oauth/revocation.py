"""RFC 7009 token revocation: request (2.1) and response (2.2, 2.2.1)."""

from __future__ import annotations

from typing import Literal

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
    params = {"token": token}
    if token_type_hint is not None:
        params["token_type_hint"] = token_type_hint
    return build_request(url, params, client=client, now=now)


def parse_revocation_response(
    status: int, content_type: str | None = None, body: bytes = b""
) -> None:
    """RFC 7009 2.2: 200 means revoked (or already invalid); 503 means try again
    (TransientProviderError); anything else raises the typed OAuth error."""
    raise_for_status("revocation", status, content_type, body)
