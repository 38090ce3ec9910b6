"""Every call to a connector's OAuth provider: the authorization URL, the token endpoint
(code exchange, refresh, client credentials) and revocation (RFC 7009).

Each call is assembled the same way here, and nowhere else: resolve the OAuth app (the
tenant's own, else the default), fill the manifest's URL template, authenticate the client
as the manifest says, prepare the request with `broker.oauth` (sans-I/O), send it.

Sending, with its hard limits, is `provider_send`.

Every call to a token or revocation endpoint is timed and its failure counted here, per
connector and call (`provider_metrics.observed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker import oauth
from broker.errors import BrokerError
from broker.manifest import Manifest, OAuthConfig, fill_template
from broker.oauth import (
    TokenRequest,
    parse_token_response,
)
from broker.services import oauth_apps
from broker.services.context import Context
from broker.services.provider_metrics import Call, observed
from broker.services.provider_send import MAX_SECONDS, send
from broker.services.records import Connection, OAuthApp, OAuthState, StoredToken


async def obtain_token(
    ctx: Context,
    request: TokenRequest,
    config: OAuthConfig,
    *,
    connector: str,
    call: Call,
    requested_scopes: Sequence[str],
    previous_refresh_token: str | None = None,
    redact: Sequence[str] = (),
    seconds: float = MAX_SECONDS,
) -> StoredToken:
    """Send a token request (code exchange, refresh, client credentials) and parse the answer
    with the manifest's provider quirks; `redact` values never appear in an error."""
    with observed(connector, call):
        answer = await send(ctx, request, seconds)
        tokens = parse_token_response(
            answer.status,
            answer.content_type,
            answer.body,
            sent_at=answer.sent_at,
            default_expires_in=config.default_expires_in,
            previous_refresh_token=previous_refresh_token,
            requested_scopes=requested_scopes,
            bearer_aliases=config.bearer_token_types,
            redact=redact,
            retry_after=answer.retry_after,
        )
    return StoredToken.from_token_set(tokens, answer.sent_at)


async def _client(
    ctx: Context,
    manifest: Manifest,
    config: OAuthConfig,
    template: str,
    tenant_id: str,
    connection_id: str,
    settings: Mapping[str, Any],
    credential_key: str | None = None,
) -> tuple[str, OAuthApp, oauth.ClientAuth]:
    """The filled endpoint URL, the app and its client authentication. `credential_key`:
    the one a flow began with (default: the manifest's)."""
    key = credential_key if credential_key is not None else config.client.credential_key
    app = await oauth_apps.resolve(ctx, key, tenant_id)
    url = fill_template(
        template, manifest, tenant_id=tenant_id, connection_id=connection_id, settings=settings
    )
    return url, app, oauth_apps.client_auth(app, config)


async def authorization_url(
    ctx: Context,
    manifest: Manifest,
    config: OAuthConfig,
    *,
    tenant_id: str,
    connection_id: str | None,
    settings: Mapping[str, Any],
    redirect_uri: str,
    state: str,
    code_verifier: str | None,
) -> str:
    """Where the browser goes to authorize. The client authentication is prepared too, only
    to refuse a misconfigured app now, not after the user has logged in at the provider."""
    assert config.authorization_url_template is not None  # manifest checks guarantee it
    template = config.authorization_url_template
    endpoint, app, _ = await _client(
        ctx, manifest, config, template, tenant_id, connection_id or "", settings
    )
    return oauth.prepare_authorization_url(
        endpoint,
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        scopes=config.scopes,
        scope_separator=config.scope_separator,
        state=state,
        code_challenge=oauth.create_s256_challenge(code_verifier) if code_verifier else None,
        extra_params=config.authorization_params,
    )


async def exchange_code(
    ctx: Context, manifest: Manifest, config: OAuthConfig, flow: OAuthState, code: str
) -> StoredToken:
    """RFC 6749 4.1.3, with the app the flow began with."""
    url, _, client = await _client(
        ctx,
        manifest,
        config,
        config.token_url_template,
        flow.tenant_id,
        flow.connection_id or "",
        flow.settings,
        flow.credential_key,
    )
    request = oauth.prepare_authorization_code_request(
        url,
        client=client,
        code=code,
        redirect_uri=flow.redirect_uri,
        code_verifier=flow.code_verifier,
        extra_params=config.token_params,
        encoding=config.token_request_encoding,
    )
    redact = [code, *([flow.code_verifier] if flow.code_verifier else [])]
    return await obtain_token(
        ctx,
        request,
        config,
        connector=manifest.key,
        call="code_exchange",
        requested_scopes=config.scopes,
        redact=redact,
    )


@dataclass(frozen=True)
class TokenCall:
    """A refresh or client-credentials request, ready to send: everything that can fail
    before the refresh token leaves (the app, the URL) has been done."""

    request: TokenRequest
    config: OAuthConfig
    spent: str | None
    """The refresh token the request sends (None for client credentials)."""
    scopes: list[str]
    connector: str
    kind: Call
    """`refresh` or `client_credentials`: the call's label in the provider metrics."""


async def token_call(
    ctx: Context, manifest: Manifest, config: OAuthConfig, conn: Connection
) -> TokenCall:
    """The request for a new token for `conn`: a refresh (RFC 6749 6), or for a
    `client_credentials` connector a new app token (4.4)."""
    url, _, client = await _client(
        ctx, manifest, config, config.token_url_template, conn.tenant_id, conn.id, conn.settings
    )
    previous = conn.token.refresh_token if conn.token else None
    call: Call = "refresh"
    if config.type == "client_credentials":
        call = "client_credentials"
        request = oauth.prepare_client_credentials_request(
            url,
            client=client,
            scopes=config.scopes,
            scope_separator=config.scope_separator,
            extra_params=config.token_params,
            encoding=config.token_request_encoding,
        )
    else:
        assert previous is not None
        request = oauth.prepare_refresh_request(
            url,
            client=client,
            refresh_token=previous,
            extra_params=config.token_params,
            encoding=config.token_request_encoding,
        )
    scopes = conn.token.scopes if conn.token else config.scopes
    return TokenCall(request, config, previous, scopes, manifest.key, call)


async def call_token(ctx: Context, call: TokenCall, *, seconds: float = MAX_SECONDS) -> StoredToken:
    """Send a prepared `token_call` and parse the answer."""
    return await obtain_token(
        ctx,
        call.request,
        call.config,
        connector=call.connector,
        call=call.kind,
        previous_refresh_token=call.spent,
        requested_scopes=call.scopes,
        redact=[call.spent] if call.spent else [],
        seconds=seconds,
    )


async def request_token(
    ctx: Context, manifest: Manifest, config: OAuthConfig, conn: Connection
) -> StoredToken:
    """`token_call` and `call_token` in one step."""
    return await call_token(ctx, await token_call(ctx, manifest, config, conn))


async def revoke(ctx: Context, connection: Connection) -> dict[str, Any]:
    """Revoke the connection's grant at the provider (RFC 7009: the refresh token when there
    is one), if the manifest can. A failure is reported, not raised."""
    manifest = ctx.catalog.manifests.get(connection.connector)
    config = manifest.oauth if manifest else None
    token = connection.token
    if (
        manifest is None
        or config is None
        or token is None
        or config.revocation_url_template is None
    ):
        return {"status": "not_supported"}
    hint: oauth.TokenTypeHint = "refresh_token" if token.refresh_token else "access_token"
    try:
        template = config.revocation_url_template
        url, _, client = await _client(
            ctx,
            manifest,
            config,
            template,
            connection.tenant_id,
            connection.id,
            connection.settings,
        )
        request = oauth.prepare_revocation_request(
            url,
            client=client,
            token=token.refresh_token or token.access_token,
            token_type_hint=hint,
        )
        with observed(manifest.key, "revocation"):
            answer = await send(ctx, request)
            oauth.parse_revocation_response(answer.status, answer.content_type, answer.body)
    except BrokerError as exc:
        return {"status": "failed", "error": getattr(exc, "error", None) or exc.code}
    return {"status": "revoked", "token_type_hint": hint}
