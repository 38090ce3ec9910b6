"""The OAuth authorization-code flow behind the Connect button (RFC 6749 4.1, RFC 9700).

`begin` turns a connect session into a redirect to the provider: a sealed one-time state
(10 minutes), PKCE S256, and a browser-binding cookie. `complete` takes the state atomically,
checks cookie, connector path and issuer, exchanges the code and stores the connection.
Nothing reaches the token endpoint unless every check passed, and nothing is stored unless
the exchange worked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import broker.services.connect.sessions as connect_sessions
from broker import metrics, oauth
from broker.errors import BrokerError, InvalidRequest
from broker.manifest import Manifest, OAuthConfig, fill_template
from broker.services import connections, events, provider, record_ids, records, refresh
from broker.services.context import Context
from broker.services.records import Connection, OAuthState, StoredToken
from broker.store import keys

STATE_TTL = 10 * 60
COOKIE_PREFIX = "broker_oauth_"


# The outcomes a callback is counted under. A provider's `error` is its own string (anyone who
# can start a flow can send any): outside RFC 6749's codes and ours it is counted as `other`,
# so /metrics keeps a fixed set of series.
_OUTCOMES = frozenset(
    {"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type"}
    | {"invalid_scope", "server_error", "temporarily_unavailable"}  # RFC 6749 4.1.2.1
    | {"invalid_client", "invalid_grant", "unsupported_grant_type"}  # RFC 6749 5.2
    | {"connected", "session_expired", "session_in_use", "issuer_mismatch", "invalid_callback"}
    | {"token_exchange_failed", "oauth_app_misconfigured", "reconnect_failed"}
)


def outcome_label(outcome: str) -> str:
    return outcome if outcome in _OUTCOMES else "other"


class BadCallback(InvalidRequest):
    """A callback with no trustworthy state: there is no return URL to go back to (a 400 page)."""

    code = "invalid_callback"


@dataclass(frozen=True)
class Redirect:
    location: str
    cookie_name: str | None = None
    cookie_value: str | None = None
    error: str | None = None
    """A failed callback's code; `location` is then the return URL that carries it."""
    show_page: bool = False
    """The failure is shown on a page of ours with a link to `location` (not redirected)."""


@dataclass(frozen=True)
class Preview:
    """What the interstitial tells the user before the browser leaves for the provider."""

    provider_origin: str
    provider_host: str
    scopes: list[str]


def preview(manifest: Manifest, session: records.ConnectSession) -> Preview:
    """The provider's host as the authorization URL will have it (the template filled with the
    session's settings, as `begin` fills it) and the scopes asked for."""
    config = oauth_config(manifest)
    assert config.authorization_url_template is not None  # manifest checks guarantee it
    url = fill_template(
        config.authorization_url_template,
        manifest,
        tenant_id=session.tenant_id,
        connection_id=session.connection_id or "",
        settings=session.settings,
    )
    parts = urlsplit(url)
    return Preview(f"{parts.scheme}://{parts.netloc}", parts.netloc, list(config.scopes))


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def cookie_name(state: str) -> str:
    # One cookie per flow, so two tabs connecting at once do not overwrite each other.
    return COOKIE_PREFIX + _sha256(state)[:16]


def redirect_uri(ctx: Context, connector: str) -> str:
    return f"{ctx.settings.public_url}/oauth/callback/{connector}"


def callback_path(ctx: Context, connector: str) -> str:
    """The callback's path as the browser sees it (BROKER_PUBLIC_URL may carry a path): the
    browser-binding cookie is scoped to it."""
    return urlsplit(redirect_uri(ctx, connector)).path


def oauth_config(manifest: Manifest) -> OAuthConfig:
    config = manifest.oauth
    if config is None:
        raise InvalidRequest(f"{manifest.key} is not an OAuth connector")
    return config


async def begin(ctx: Context, token: str, session: records.ConnectSession) -> Redirect:
    manifest = ctx.catalog.get(session.connector)
    config = oauth_config(manifest)
    state = oauth.create_state()
    verifier = oauth.create_code_verifier() if config.pkce else None
    uri = redirect_uri(ctx, manifest.key)
    # before the state is stored: a misconfigured app is refused here
    location = await provider.authorization_url(
        ctx,
        manifest,
        config,
        tenant_id=session.tenant_id,
        connection_id=session.connection_id,
        settings=session.settings,
        redirect_uri=uri,
        state=state,
        code_verifier=verifier,
    )
    browser_secret = secrets.token_urlsafe(32)
    record = OAuthState(
        session_hash=connect_sessions.token_hash(token),
        connector=manifest.key,
        tenant_id=session.tenant_id,
        return_url=session.return_url,
        connection_id=session.connection_id,
        new_connection_id=session.new_connection_id,
        show_pages=not session.skip_interstitial,
        settings=session.settings,
        redirect_uri=uri,
        code_verifier=verifier,
        browser_hash=_sha256(browser_secret),
        credential_key=config.client.credential_key,
        created_at=ctx.clock(),
    )
    await records.save_ttl(ctx.store, keys.oauth_state(_sha256(state)), record, STATE_TTL)
    return Redirect(location, cookie_name(state), browser_secret)


async def complete(
    ctx: Context, connector: str, query: Mapping[str, str], cookies: Mapping[str, str]
) -> Redirect:
    """The provider's redirect back. Raises `BadCallback` when the state cannot be trusted;
    otherwise always answers with a redirect to the session's return URL."""
    state = query.get("state")
    if not state or len(state) > 512:
        raise BadCallback("the callback has no state")
    record = await records.take(ctx.store, keys.oauth_state(_sha256(state)), OAuthState)
    if record is None:
        raise BadCallback("unknown, used or expired state")
    if record.connector != connector:
        raise BadCallback("the state belongs to another connector")
    presented = cookies.get(cookie_name(state), "")
    if not hmac.compare_digest(_sha256(presented), record.browser_hash):
        raise BadCallback("this browser did not start the flow (missing or wrong cookie)")

    def fail(error: str) -> Redirect:
        metrics.CONNECT_CALLBACKS.labels(connector, outcome_label(error)).inc()
        back = connect_sessions.return_to(record.return_url, status="error", error=error)
        return Redirect(back, error=error, show_page=record.show_pages)

    manifest = ctx.catalog.get(connector)
    config = oauth_config(manifest)
    try:
        response = oauth.parse_authorization_response(query, expected_issuer=config.issuer)
    except oauth.AuthorizationDenied as exc:
        return fail(exc.error or "access_denied")
    except oauth.IssuerMismatch:
        return fail("issuer_mismatch")
    except oauth.AuthorizationResponseError:
        return fail("invalid_callback")
    # before the code exchange: two tabs that each started a flow from one link make one
    # connection (the other tab is told the link is in use)
    try:
        claim = await connect_sessions.claim(ctx, record.session_hash)
    except connect_sessions.SessionInUse:
        return fail("session_in_use")
    if claim is None:
        return fail("session_expired")
    try:
        try:
            token = await provider.exchange_code(ctx, manifest, config, record, response.code)
        except Exception:
            # nothing was written: the link may start a new flow, in this tab or another
            await connect_sessions.give_back(ctx, claim)
            raise
    except oauth.OAuthError as exc:
        return fail(exc.error if exc.error and not exc.transient else "token_exchange_failed")
    except oauth.ClientCredentialsError:
        return fail("oauth_app_misconfigured")
    try:
        connection = await _store(ctx, record, token)
    except BrokerError:
        # the claim stays (the link is used up): the write may have landed, a second must not
        return fail("reconnect_failed")
    await connect_sessions.finish(ctx, claim)
    metrics.CONNECT_CALLBACKS.labels(connector, "connected").inc()
    return Redirect(
        connect_sessions.return_to(
            record.return_url, status="connected", connection_id=connection.id
        )
    )


async def _store(ctx: Context, record: OAuthState, token: StoredToken) -> Connection:
    now = ctx.clock()
    if record.connection_id is None:
        connection = Connection(
            # the session's id (the interstitial may have shown its webhook URL)
            id=record.new_connection_id or record_ids.new_connection_id(),
            tenant_id=record.tenant_id,
            connector=record.connector,
            settings=record.settings,
            token=token,
            created_at=now,
            updated_at=now,
        )
        await connections.create(ctx, connection)
        await refresh.schedule_next(ctx, connection)
        return connection

    # Reconnect: same id, fresh tokens, back to active; CAS so a concurrent write is not lost.
    # Not under the refresh lock: the new grant wins whenever it lands, and a refresh of the
    # old one in flight drops its result on seeing another token (`refresh.outcome`), so
    # the tenant's browser never waits on the old grant's provider call.
    def reconnect(existing: Connection) -> Connection:
        updated = existing.model_copy(
            update={
                "status": "active",
                "reauth_reason": None,
                "token": token,
                "settings": {**existing.settings, **record.settings},
                "refresh": records.RefreshState(),
                "updated_at": now,
            }
        )
        return events.add(
            ctx,
            updated,
            "connection.reconnected",
            {"status": "active", "previous_status": existing.status},
        )

    updated, _ = await events.update_connection(
        ctx,
        record.connection_id,
        reconnect,
        contended="the connection kept changing during reconnect",
    )
    await refresh.schedule_next(ctx, updated)
    return updated
