"""Connect sessions: the one-time link the dashboard's Connect button opens.

The token is a capability: 256 random bits, handed out once, stored only as its SHA-256
(a store dump yields no usable link). A session works for 30 minutes and dies when a
connection completes through it; the request that completes it holds its claim first, so
one session makes at most one connection however many tabs use it (docs/architecture.md).
A dead session's record stays `ENDED_GRACE` longer, unusable, so that a reopened link can
say why it is dead and lead back to the dashboard.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from broker.config import origin_of
from broker.errors import Conflict, InvalidRequest, NotFound
from broker.manifest import Manifest, settings_schema
from broker.services import connections, oauth_apps, record_ids, records, settings_versions
from broker.services.context import Context
from broker.services.records import ConnectSession
from broker.store import keys

SESSION_TTL = 30 * 60
ENDED_GRACE = 24 * 3600
"""How long a used or expired link still leads back to its dashboard (the link in yesterday's
email); after that it is unknown."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(ctx: Context, body: dict[str, Any]) -> tuple[str, ConnectSession]:
    """Validate everything now, so the browser never lands on a session that cannot work
    (`body`'s fields are known ones: the route's request model refuses others)."""
    tenant_id = record_ids.check_tenant_id(body.get("tenant_id"))
    manifest = connections.connector_of(ctx, body.get("connector"))
    return_url = check_return_url(ctx, body.get("return_url"))
    given = body.get("settings", {})
    if not isinstance(given, dict):
        raise InvalidRequest("settings must be a JSON object")
    oauth = manifest.oauth
    if given and oauth is None:
        raise InvalidRequest("settings of an API-key connector are entered on the connect form")
    settings = given
    connection_id = body.get("connection_id")
    if connection_id is not None:
        existing, _ = await connections.get(ctx, str(connection_id))
        if (existing.tenant_id, existing.connector) != (tenant_id, manifest.key):
            raise NotFound(f"no connection {connection_id!r} of {manifest.key} for this tenant")
        settings = {**existing.settings, **given}
    if oauth is not None:
        _check_oauth_settings(manifest, settings)
        if oauth.type != "authorization_code":
            raise InvalidRequest(f"{manifest.key} uses {oauth.type}: there is nothing to click")
        await oauth_apps.resolve(ctx, oauth.client.credential_key, tenant_id)
    token = secrets.token_urlsafe(32)
    now = ctx.clock()
    session = ConnectSession(
        tenant_id=tenant_id,
        connector=manifest.key,
        return_url=return_url,
        connection_id=connection_id,
        new_connection_id=record_ids.new_connection_id() if connection_id is None else None,
        settings=settings,
        skip_interstitial=body.get("skip_interstitial", False),
        created_at=now,
        expires_at=now + SESSION_TTL,
    )
    await records.save_ttl(
        ctx.store, keys.connect_session(token_hash(token)), session, SESSION_TTL + ENDED_GRACE
    )
    return token, session


async def load(ctx: Context, token: str) -> ConnectSession | None:
    if not token or len(token) > 128:
        return None
    return await _load(ctx, token_hash(token))


async def _load(ctx: Context, session_hash: str) -> ConnectSession | None:
    found = await records.load(ctx.store, keys.connect_session(session_hash), ConnectSession)
    if found is None or found[0].used_at is not None or found[0].expires_at <= ctx.clock():
        return None
    return found[0]


@dataclass(frozen=True)
class DeadLink:
    """Why a link that once worked no longer does, and where its page leads back to."""

    reason: Literal["used", "expired"]
    connector: str
    back_url: str


async def dead_link(ctx: Context, token: str) -> DeadLink | None:
    """A used or expired session still on record (None: unknown, or gone for good). Safe to
    show: whoever holds the token could see the same return URL while the link worked."""
    if not token or len(token) > 128:
        return None
    found = await records.load(ctx.store, keys.connect_session(token_hash(token)), ConnectSession)
    if found is None:
        return None
    session = found[0]
    if session.used_at is not None and session.target_id is not None:
        # the link did its job: back with the result it had then
        back = return_to(session.return_url, status="connected", connection_id=session.target_id)
        return DeadLink("used", session.connector, back)
    if session.expires_at <= ctx.clock():
        back = return_to(session.return_url, status="error", error="session_expired")
        return DeadLink("expired", session.connector, back)
    return None


class SessionInUse(Conflict):
    code = "session_in_use"


@dataclass(frozen=True)
class Claim:
    """The right to complete one connect session: whoever holds it is the only request that
    may create or change a connection through the session."""

    session_hash: str
    owner: str
    session: ConnectSession


async def claim(ctx: Context, session_hash: str) -> Claim | None:
    """Claim the session before anything reaches a provider or a store (None: the session is
    gone). Raises `SessionInUse` while another request (another tab) holds it. The claim lasts
    a whole session lifetime, longer than the session has left: a request that dies holding it
    leaves the link used up, never open to a second connection."""
    owner = await ctx.store.acquire(keys.connect_session_claim(session_hash), SESSION_TTL)
    if owner is None:
        raise SessionInUse(
            "this connect link is being used in another tab or window; finish there, or wait "
            "and try again"
        )
    # read under the claim: only a claim holder deletes the session, so it stays until we do
    session = await _load(ctx, session_hash)
    if session is None:
        await ctx.store.release(keys.connect_session_claim(session_hash), owner)
        return None
    return Claim(session_hash, owner, session)


async def give_back(ctx: Context, claim: Claim) -> None:
    """After a failure that wrote nothing (a rejected key, a failed code exchange): the link
    works again, for this tab or another."""
    await ctx.store.release(keys.connect_session_claim(claim.session_hash), claim.owner)


async def finish(ctx: Context, claim: Claim) -> None:
    """The connection is written: the session dies (a tombstone takes its place), then the
    claim goes (a request that claims after this finds no live session)."""
    ended = claim.session.model_copy(update={"used_at": ctx.clock(), "settings": {}})
    await records.save_ttl(ctx.store, keys.connect_session(claim.session_hash), ended, ENDED_GRACE)
    await give_back(ctx, claim)


async def connect_with_settings(
    ctx: Context, session: ConnectSession, values: dict[str, Any]
) -> records.Connection:
    """What the API-key form does: a new connection, or, for a session made for an existing
    connection, a new settings version of that one (tested first, as any change is; a field
    left empty keeps its current value, as a secret is never shown to be re-entered)."""
    if session.connection_id is None:
        return await connections.create_direct_connection(
            ctx, session.tenant_id, session.connector, values, connection_id=session.target_id
        )
    if not values:
        raise InvalidRequest("nothing to change: enter the settings to replace")
    return await settings_versions.change(ctx, session.connection_id, values, actor="connect_form")


def connect_url(ctx: Context, token: str) -> str:
    return f"{ctx.settings.public_url}/connect/{token}"


def connect_path(ctx: Context, token: str) -> str:
    """The link's path as the browser sees it (under BROKER_PUBLIC_URL's path, if it has one):
    where the settings form posts back to."""
    return urlsplit(connect_url(ctx, token)).path


def check_return_url(ctx: Context, value: Any) -> str:
    """Exact origin match against BROKER_ALLOWED_RETURN_ORIGINS: no open redirect."""
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidRequest("return_url must be an absolute URL")
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.password
    ):
        raise InvalidRequest("return_url must be an absolute http(s) URL without credentials")
    if origin_of(value) not in ctx.settings.allowed_return_origins:
        raise InvalidRequest(
            "return_url is not on an allowed origin (BROKER_ALLOWED_RETURN_ORIGINS)"
        )
    return value


def return_to(return_url: str, **params: str) -> str:
    """`return_url` with our parameters added (theirs kept, fragment dropped)."""
    parts = urlsplit(return_url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _check_oauth_settings(manifest: Manifest, settings: Any) -> None:
    # Secret settings (a webhook signing secret, say) are set later with PATCH .../settings:
    # a connect session is readable by whoever holds the link, so it carries none.
    schema = manifest.settings_schema
    secret = settings_schema.secret_names(schema)
    if isinstance(settings, dict) and secret & set(settings):
        raise InvalidRequest(
            f"secret settings cannot go through a connect session: {sorted(secret & set(settings))}"
        )
    required = [name for name in schema.get("required", []) if name not in secret]
    settings_schema.validate_settings({**schema, "required": required}, settings)
