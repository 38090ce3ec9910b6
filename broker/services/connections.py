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

from broker import settings_schema
from broker.errors import InvalidRequest, NotFound, VersionConflict
from broker.manifest import Manifest
from broker.services import records
from broker.services.context import Context
from broker.services.records import Connection, TenantIndex
from broker.services.runtime_check import test_settings
from broker.store import keys

CAS_RETRIES = 20


async def create_api_key_connection(
    ctx: Context, tenant_id: Any, connector: Any, settings: Any
) -> Connection:
    """Validate, test (testConnection), seal and store; nothing is stored on any failure."""
    tenant_id = records.check_tenant_id(tenant_id)
    manifest = connector_of(ctx, connector)
    if manifest.auth_mode == "oauth":
        raise InvalidRequest(
            f"{manifest.key} connects with OAuth: create a connect session instead"
        )
    settings_schema.validate_settings(manifest.settings_schema, settings)
    public, secret = settings_schema.split(manifest.settings_schema, settings)
    await test_settings(ctx, manifest, tenant_id, settings, list(secret.values()))
    now = ctx.clock()
    connection = Connection(
        id=records.new_connection_id(),
        tenant_id=tenant_id,
        connector=manifest.key,
        settings=public,
        secrets=secret,
        created_at=now,
        updated_at=now,
    )
    await create(ctx, connection)
    return connection


async def create(ctx: Context, connection: Connection) -> int:
    await index_add(ctx, connection.tenant_id, connection.id)
    return await records.save(ctx.store, keys.connection(connection.id), connection, 0)


def connector_of(ctx: Context, key: Any) -> Manifest:
    if not isinstance(key, str):
        raise InvalidRequest("connector must be a connector key")
    return ctx.catalog.get(key)


async def get(ctx: Context, connection_id: str) -> tuple[Connection, int]:
    found = None
    if records.is_connection_id(connection_id):
        found = await records.load(ctx.store, keys.connection(connection_id), Connection)
    if found is None:
        raise NotFound(f"no connection {connection_id!r}")
    return found


async def list_for_tenant(ctx: Context, tenant_id: Any) -> list[Connection]:
    tenant_id = records.check_tenant_id(tenant_id)
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
    key = keys.tenant_connections(tenant_id)
    for _ in range(CAS_RETRIES):
        found = await records.load(ctx.store, key, TenantIndex)
        index, version = found if found else (TenantIndex(), 0)
        updated = change(index.connection_ids)
        if updated == index.connection_ids and found is not None:
            return
        try:
            await records.save(ctx.store, key, TenantIndex(connection_ids=updated), version)
            return
        except VersionConflict:
            continue
    raise VersionConflict(f"tenant index of {tenant_id!r} is too contended; retry")


def merged_settings(connection: Connection) -> Mapping[str, Any]:
    return {**connection.settings, **connection.secrets}
