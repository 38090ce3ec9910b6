"""Connections: create (API-key), read, list per tenant, and the tenant index.

A connection and its tenant's index live under different hash tags, so they cannot change in
one atomic step. The order makes every crash harmless: the id joins the index before the
record is created and leaves it after the record is deleted, and readers skip ids whose
record is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from broker.errors import InvalidRequest, RevocationFailed
from broker.manifest import Manifest, settings_schema
from broker.services import cas, events, provider, record_ids, records, refresh
from broker.services.connection_check import test_settings
from broker.services.context import Context
from broker.services.records import Connection, TenantIndex
from broker.store import keys


async def create_direct_connection(
    ctx: Context, tenant_id: Any, connector: Any, settings: Any, *, connection_id: str | None = None
) -> Connection:
    """A connection made without a browser: an API-key connector, or an OAuth
    `client_credentials` one (the broker fetches the app token now, proving the app works).
    Validate, test (testConnection), seal and store; nothing is stored on any failure.
    `connection_id`: the id fixed beforehand (a connect session's, whose page showed it)."""
    tenant_id = record_ids.check_tenant_id(tenant_id)
    manifest = connector_of(ctx, connector)
    oauth_config = manifest.oauth
    if oauth_config is not None and oauth_config.type != "client_credentials":
        raise InvalidRequest(
            f"{manifest.key} connects with OAuth: create a connect session instead"
        )
    settings_schema.validate_settings(manifest.settings_schema, settings)
    public, secret = settings_schema.split(manifest.settings_schema, settings)
    await test_settings(ctx, manifest, tenant_id, settings, list(secret.values()))
    now = ctx.clock()
    connection = Connection(
        id=connection_id or record_ids.new_connection_id(),
        tenant_id=tenant_id,
        connector=manifest.key,
        settings=public,
        secrets=secret,
        created_at=now,
        updated_at=now,
    )
    if oauth_config is not None:
        token = await provider.request_token(ctx, manifest, oauth_config, connection)
        connection = connection.model_copy(update={"token": token})
    await create(ctx, connection)
    if oauth_config is not None:
        await refresh.schedule_next(ctx, connection)
    return connection


async def create(ctx: Context, connection: Connection) -> int:
    await index_add(ctx, connection.tenant_id, connection.id)
    created = events.add(
        ctx,
        connection,
        "connection.created",
        {
            "status": connection.status,
            "settings": sorted({*connection.settings, *connection.secrets}),
            "settings_version": connection.settings_version,
        },
    )
    return await events.save(ctx, created, 0)


def connector_of(ctx: Context, key: Any) -> Manifest:
    if not isinstance(key, str):
        raise InvalidRequest("connector must be a connector key")
    return ctx.catalog.get(key)


async def get(ctx: Context, connection_id: str, *, cached: bool = False) -> tuple[Connection, int]:
    """The record and its version. `cached` reads through the hot-path cache: only for
    callers that do not write back what they read."""
    return await records.load_connection(ctx.store, connection_id, cached=cached)


async def list_for_tenant(ctx: Context, tenant_id: Any) -> list[Connection]:
    tenant_id = record_ids.check_tenant_id(tenant_id)
    index = await records.load(ctx.store, keys.tenant_connections(tenant_id), TenantIndex)
    if index is None:
        return []
    found = await asyncio.gather(
        *(
            records.load(ctx.store, keys.connection(cid), Connection)
            for cid in index[0].connection_ids
        )
    )
    return [conn for conn, _ in filter(None, found) if conn.tenant_id == tenant_id]


async def index_add(ctx: Context, tenant_id: str, connection_id: str) -> None:
    await _update_index(
        ctx, tenant_id, lambda ids: ids if connection_id in ids else [*ids, connection_id]
    )


async def index_remove(ctx: Context, tenant_id: str, connection_id: str) -> None:
    await _update_index(ctx, tenant_id, lambda ids: [i for i in ids if i != connection_id])


async def _update_index(
    ctx: Context, tenant_id: str, change: Callable[[list[str]], list[str]]
) -> None:
    async def apply(index: TenantIndex | None) -> TenantIndex | None:
        ids = index.connection_ids if index is not None else []
        updated = change(ids)
        if updated == ids and index is not None:
            return None
        return TenantIndex(connection_ids=updated)

    await cas.update(
        ctx.store,
        keys.tenant_connections(tenant_id),
        TenantIndex,
        apply,
        contended=f"tenant index of {tenant_id!r} is too contended; retry",
    )


def merged_settings(connection: Connection) -> Mapping[str, Any]:
    return {**connection.settings, **connection.secrets}


async def delete(ctx: Context, connection_id: str, *, force: bool = False) -> dict[str, Any]:
    """Revoke at the provider (RFC 7009) when the manifest can, then delete.

    A failed revocation keeps the connection (it is the only handle left to revoke with) and
    raises, unless `force`: then it is deleted anyway and the failure is reported.
    """
    connection, _ = await get(ctx, connection_id)
    revocation = await provider.revoke(ctx, connection)
    if revocation.get("status") == "failed" and not force:
        raise RevocationFailed(
            f"revocation at the provider failed ({revocation['error']}); the connection is kept. "
            "Retry, or delete with force=true to drop it anyway."
        )
    deleted = {"revocation": revocation["status"], "forced": force}
    if "error" in revocation:
        deleted["revocation_error"] = revocation["error"]
    await events.delete_connection(ctx, connection.id, deleted)
    await ctx.store.unschedule(keys.connection(connection.id))
    await ctx.store.delete(keys.refresh_journal(connection.id))  # it may hold tokens
    await index_remove(ctx, connection.tenant_id, connection.id)
    return {"id": connection.id, "deleted": True, "revocation": revocation}
