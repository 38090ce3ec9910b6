"""What a connector runtime may read, checked against the grant in its runtime token.

The grant is fixed at mint time and verified without the store; the connection record is
read on every call, so a deleted connection makes its tokens useless at once, and so does
one left `revoked` by a delete that did not finish. Every read is audited by name and
outcome, never by value.
"""

from __future__ import annotations

import json

from broker.crypto.runtime_tokens import RuntimeGrant
from broker.errors import (
    BrokerError,
    NeedsReauth,
    NotFound,
    NotGranted,
    NotOAuth,
    Unauthorized,
)
from broker.services import refresh
from broker.services.audited import audited
from broker.services.context import Context
from broker.services.records import Connection, RuntimeView, StoredToken
from broker.store import keys


async def connection_view(ctx: Context, grant: RuntimeGrant) -> tuple[RuntimeView, int]:
    """The connection's runtime view (settings, secrets, token), checked as every read is,
    and the record's version."""
    view, _, version = await _connection(ctx, grant)
    return view, version


async def _connection(ctx: Context, grant: RuntimeGrant) -> tuple[RuntimeView, bytes, int]:
    """The connection's runtime view, with the record's JSON (for the full parse the refresh
    path needs) and version. A cache hit costs no await at all (the grant's id was checked
    at mint)."""
    key = keys.connection(grant.connection_id)
    found = ctx.store.peek_cached(key) or await ctx.store.get_cached(key)
    if found is None:
        raise Unauthorized("the runtime token's connection no longer exists")
    raw, version = found
    view = RuntimeView.model_validate_json(raw)
    if view.tenant_id != grant.tenant_id or view.connector != grant.connector:
        raise Unauthorized("the runtime token does not match its connection")
    if view.status == "revoked":
        # a delete that did not finish: the connection is gone for everyone but its record.
        # 409 needs_reauth, as the access-token path has always answered it; needs_reauth
        # itself still serves settings, since only the OAuth grant is lost.
        raise NeedsReauth(f"connection {grant.connection_id} is revoked: nothing is served")
    return view, raw, version


async def read_secret(ctx: Context, grant: RuntimeGrant, name: str) -> tuple[str, int]:
    with audited(
        ctx.audit,
        f"runtime:{grant.token_id}",
        "secret.read",
        grant.tenant_id,
        grant.connection_id,
        name[:128],
        errors=BrokerError,
        untrusted_if="not_granted",
    ):
        if name not in grant.secrets:
            raise NotGranted(f"{name!r} is not granted to this connector (permissions.secrets)")
        conn, _, _ = await _connection(ctx, grant)
        value = conn.secrets.get(name, conn.settings.get(name))
        if value is None:
            raise NotFound(f"{name!r} is granted but not set on this connection")
        # non-string settings go out as JSON text (`true`, not Python's `True`)
        return (value if isinstance(value, str) else json.dumps(value)), conn.settings_version


async def access_token(
    ctx: Context, grant: RuntimeGrant, *, min_ttl: float | None, force: bool = False
) -> StoredToken:
    with audited(
        ctx.audit,
        f"runtime:{grant.token_id}",
        "token.refresh" if force else "token.read",
        grant.tenant_id,
        grant.connection_id,
        errors=BrokerError,
    ):
        return await current_token(ctx, grant, min_ttl=min_ttl, force=force)


async def current_token(
    ctx: Context, grant: RuntimeGrant, *, min_ttl: float | None, force: bool = False
) -> StoredToken:
    """`access_token` without its audit entry: for the egress proxy, which audits the
    call it makes with the token instead."""
    if not grant.oauth:
        raise NotOAuth("this connection does not use OAuth")
    view, raw, version = await _connection(ctx, grant)
    wanted = ctx.settings.refresh_margin if min_ttl is None else min_ttl
    token = view.token
    if not force and view.status == "active" and refresh.is_fresh(token, wanted, ctx.clock()):
        assert token is not None
        return token  # the hot path: nothing to refresh, nothing to await
    if not force and view.status == "active":
        joined = refresh.join_unforced(ctx, grant.connection_id)
        if joined is not None:
            return await joined
    current = Connection.model_validate_json(raw), version
    return await refresh.ensure_fresh(
        ctx, grant.connection_id, min_ttl=wanted, force=force, current=current
    )
