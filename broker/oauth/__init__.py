"""Sans-I/O OAuth 2.0: pure functions that build requests and parse responses.

One module per RFC or concept: `pkce` (RFC 7636), `authorize` (RFC 6749 4.1, RFC 9207),
`client_auth` (RFC 6749 2.3.1, RFC 7523), `token` (RFC 6749 4.1.3, 4.4, 5, 6),
`revocation` (RFC 7009), `errors`. No network here: services send what these build.
Built on authlib's pure functions where they are right; each function of ours says why.
"""

from __future__ import annotations

from broker.oauth.authorize import (
    RESERVED_AUTHORIZATION_PARAMS,
    AuthorizationResponse,
    create_state,
    parse_authorization_response,
    prepare_authorization_url,
)
from broker.oauth.client_auth import (
    JWT_BEARER_ASSERTION,
    ClientAuth,
    ClientAuthMethod,
    ClientAuthParts,
    apply_client_auth,
    basic_authorization_header,
    create_client_assertion,
)
from broker.oauth.errors import (
    AuthorizationDenied,
    AuthorizationResponseError,
    ClientCredentialsError,
    InvalidClient,
    InvalidGrant,
    IssuerMismatch,
    MalformedTokenResponse,
    OAuthError,
    TokenEndpointError,
    TransientProviderError,
)
from broker.oauth.pkce import S256, create_code_verifier, create_s256_challenge
from broker.oauth.revocation import (
    TokenTypeHint,
    parse_revocation_response,
    prepare_revocation_request,
)
from broker.oauth.token import (
    RESERVED_TOKEN_PARAMS,
    BodyEncoding,
    TokenRequest,
    TokenSet,
    parse_token_response,
    prepare_authorization_code_request,
    prepare_client_credentials_request,
    prepare_refresh_request,
)

__all__ = [
    "JWT_BEARER_ASSERTION",
    "RESERVED_AUTHORIZATION_PARAMS",
    "RESERVED_TOKEN_PARAMS",
    "S256",
    "AuthorizationDenied",
    "AuthorizationResponse",
    "AuthorizationResponseError",
    "BodyEncoding",
    "ClientAuth",
    "ClientAuthMethod",
    "ClientAuthParts",
    "ClientCredentialsError",
    "InvalidClient",
    "InvalidGrant",
    "IssuerMismatch",
    "MalformedTokenResponse",
    "OAuthError",
    "TokenEndpointError",
    "TokenRequest",
    "TokenSet",
    "TokenTypeHint",
    "TransientProviderError",
    "apply_client_auth",
    "basic_authorization_header",
    "create_client_assertion",
    "create_code_verifier",
    "create_s256_challenge",
    "create_state",
    "parse_authorization_response",
    "parse_revocation_response",
    "parse_token_response",
    "prepare_authorization_code_request",
    "prepare_authorization_url",
    "prepare_client_credentials_request",
    "prepare_refresh_request",
    "prepare_revocation_request",
]
