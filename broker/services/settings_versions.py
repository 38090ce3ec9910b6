"""Versioned connection settings: change (tested first), list, roll back.

Every change makes a new current version; the one it replaces joins the history, sealed in
the same record like everything else, and leaves it after `BROKER_SETTINGS_HISTORY` newer
versions or `BROKER_SETTINGS_HISTORY_TTL` seconds. A rollback is a change too: the old values
come back as a new version (numbers only go up), tested like any other.
"""

from __future__ import annotations

from typing import Any

from broker.errors import NotFound, VersionConflict
from broker.manifest import settings_schema
from broker.services import connections, events
from broker.services.audited import audited
from broker.services.connection_check import test_settings
from broker.services.context import Context
from broker.services.records import Connection, SettingsVersion


async def change(
    ctx: Context, connection_id: str, changes: dict[str, Any], *, actor: str = "admin"
) -> Connection:
    """Merge `changes` into the current settings (`null` removes one), validate, test with the
    runtime, and only then make the result current."""
    connection, version = await connections.get(ctx, connection_id)
    merged = {**connections.merged_settings(connection), **changes}
    merged = {k: v for k, v in merged.items() if v is not None}
    return await _replace(
        ctx,
        connection,
        version,
        merged,
        action="settings.change",
        actor=actor,
        names=sorted(changes),
    )


async def rollback(
    ctx: Context, connection_id: str, to_version: int, *, actor: str = "admin"
) -> Connection:
    connection, version = await connections.get(ctx, connection_id)
    old = next((v for v in connection.history if v.version == to_version), None)
    if old is None:
        raise NotFound(
            f"settings version {to_version} of {connection_id} is not kept (or never existed)"
        )
    return await _replace(
        ctx,
        connection,
        version,
        {**old.settings, **old.secrets},
        action="settings.rollback",
        actor=actor,
        names=[f"v{to_version}"],
    )


def versions(connection: Connection) -> list[dict[str, Any]]:
    """Every kept version, newest first: numbers, times and setting names, never values."""
    current = [
        {
            "version": connection.settings_version,
            "current": True,
            # when these settings became current (updated_at moves with every token refresh)
            "created_at": connection.settings_since or connection.created_at,
            "names": sorted({*connection.settings, *connection.secrets}),
        }
    ]
    return current + [
        {
            "version": v.version,
            "current": False,
            "created_at": v.created_at,
            "replaced_at": v.replaced_at,
            "names": sorted({*v.settings, *v.secrets}),
        }
        for v in connection.history
    ]


async def _replace(
    ctx: Context,
    connection: Connection,
    version: int,
    settings: dict[str, Any],
    *,
    action: str,
    actor: str,
    names: list[str],
) -> Connection:
    manifest = ctx.catalog.get(connection.connector)
    schema = manifest.settings_schema
    with audited(
        ctx.audit,
        actor,
        action,
        connection.tenant_id,
        connection.id,
        ",".join(names)[:256],
    ):
        settings_schema.validate_settings(schema, settings)
        public, secret = settings_schema.split(schema, settings)
        await test_settings(ctx, manifest, connection.tenant_id, settings, list(secret.values()))
        now = ctx.clock()
        replaced = SettingsVersion(
            version=connection.settings_version,
            settings=connection.settings,
            secrets=connection.secrets,
            created_at=connection.settings_since or connection.created_at,
            replaced_at=now,
        )
        updated = connection.model_copy(
            update={
                "settings": public,
                "secrets": secret,
                "settings_version": connection.settings_version + 1,
                "settings_since": now,
                "history": prune(ctx, [replaced, *connection.history], now),
                "updated_at": now,
            }
        )
        updated = events.add(
            ctx,
            updated,
            "connection.settings_rotated",
            {
                "action": action.removeprefix("settings."),
                "names": changed_names(connection, public, secret),
                "version": updated.settings_version,
                "previous_version": connection.settings_version,
            },
        )
        try:
            await events.save(ctx, updated, version)
        except VersionConflict:
            raise VersionConflict(
                "the connection changed while its settings were tested; retry"
            ) from None
        return updated


def changed_names(
    connection: Connection, public: dict[str, Any], secret: dict[str, str]
) -> list[str]:
    """Names whose value differs between the current settings and the new ones (values are
    compared here and go no further)."""
    old, new = connections.merged_settings(connection), {**public, **secret}
    return sorted(name for name in {*old, *new} if old.get(name) != new.get(name))


def prune(ctx: Context, history: list[SettingsVersion], now: float) -> list[SettingsVersion]:
    keep, ttl = ctx.settings.settings_history, ctx.settings.settings_history_ttl
    kept = [v for v in history if ttl == 0 or v.replaced_at is None or now - v.replaced_at <= ttl]
    return kept[:keep]


def secret_values_within(connection: Connection, name: str, grace: float, now: float) -> list[str]:
    """The current value of secret setting `name`, then earlier values replaced less than
    `grace` seconds ago (a provider rolling its signing secret signs with both for a while)."""
    values = [connection.secrets[name]] if name in connection.secrets else []
    for old in connection.history:
        if old.replaced_at is None or now - old.replaced_at > grace:
            break
        value = old.secrets.get(name)
        if value and value not in values:
            values.append(value)
    return values
