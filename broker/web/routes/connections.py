"""Admin routes for connections: create (API key), list per tenant, read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from broker.errors import InvalidRequest
from broker.logs import note_connection
from broker.services import connections, settings_versions
from broker.web.openapi.spec import Operations, json_body, json_reply, path, query, schema_of
from broker.web.state import CONTEXT
from broker.web.wire import (
    ConnectionId,
    ConnectionView,
    RequestBody,
    SettingsObject,
    TenantId,
    Time,
    Version,
    connection_view,
    iso,
)

routes = web.RouteTableDef()
operation = Operations("connections")


class CreateConnection(RequestBody):
    tenant_id: TenantId
    connector: str = Field(description="a connector key (unknown: 404)")
    settings: SettingsObject = {}


class ChangeSettings(RequestBody):
    settings: Annotated[dict[str, Any], Field(min_length=1)] = Field(
        description="merged; `null` removes a setting"
    )


class Rollback(RequestBody):
    version: int


class Connections(BaseModel):
    connections: list[ConnectionView]


class Revocation(BaseModel):
    status: Literal["revoked", "not_supported", "failed"]
    token_type_hint: Literal["refresh_token", "access_token"] | None = None
    error: str | None = None


class Deleted(BaseModel):
    id: ConnectionId
    deleted: Literal[True]
    revocation: Revocation


class SettingsVersion(BaseModel):
    version: Version
    current: bool
    created_at: Time
    replaced_at: Time | None = None
    names: list[str] = Field(description="setting names, never values")


class SettingsVersions(BaseModel):
    versions: list[SettingsVersion]


CONNECTION_ID = path(
    "connection_id", "a connection id (other shapes: 404)", schema_of(ConnectionId)
)
ONE = {200: json_reply("the connection, secrets redacted", ConnectionView)}
MISSING = "`not_found`: no such connection"
REFUSED = "`invalid_settings`, `connection_test_failed`: refused, nothing changed"
TESTED = {
    404: MISSING,
    409: "`version_conflict`: it changed meanwhile; retry",
    502: "`runtime_unavailable`: testConnection could not run",
}


@routes.post("/v1/connections")
@operation(
    "createConnection",
    "Create an API-key (or OAuth client_credentials) connection",
    answers={201: json_reply("validated, tested, sealed", ConnectionView)},
    errors={
        400: f"`invalid_request`: bad field, or an authorization-code connector; {REFUSED}",
        404: "`not_found`: unknown connector",
        409: "`version_conflict`: the tenant's index is too contended; retry",
        502: "`runtime_unavailable`, `provider_error`: testConnection or the token endpoint failed",
    },
)
@json_body(CreateConnection)
async def create_connection(request: web.Request, body: CreateConnection) -> web.Response:
    ctx = request.app[CONTEXT]
    conn = await connections.create_direct_connection(
        ctx, body.tenant_id, body.connector, body.settings
    )
    note_connection(conn.id, conn.tenant_id)
    return web.json_response(connection_view(ctx, conn), status=201)


@routes.get("/v1/connections")
@operation(
    "listConnections",
    "A tenant's connections",
    params=(query("tenant_id", "the tenant", schema_of(TenantId), required=True),),
    answers={200: json_reply("secrets redacted", Connections)},
    errors={400: "`invalid_request`: missing or bad tenant_id"},
)
async def list_connections(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    tenant_id = request.query.get("tenant_id")
    if tenant_id is None:
        raise InvalidRequest("tenant_id is required")
    found = await connections.list_for_tenant(ctx, tenant_id)
    return web.json_response({"connections": [connection_view(ctx, c) for c in found]})


@routes.get("/v1/connections/{connection_id}")
@operation(
    "getConnection",
    "Read a connection",
    params=(CONNECTION_ID,),
    answers=ONE,
    errors={404: MISSING},
)
async def get_connection(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    conn, _ = await connections.get(ctx, request.match_info["connection_id"])
    note_connection(conn.id, conn.tenant_id)
    return web.json_response(connection_view(ctx, conn))


@routes.delete("/v1/connections/{connection_id}")
@operation(
    "deleteConnection",
    "Revoke at the provider (where the manifest can), then delete",
    params=(
        CONNECTION_ID,
        query(
            "force",
            "delete even if revocation fails",
            {"type": "string", "enum": ["true", "false"], "default": "false"},
        ),
    ),
    answers={200: json_reply("deleted", Deleted)},
    errors={
        400: "`invalid_request`: force is not true or false",
        404: MISSING,
        409: "`conflict`, `version_conflict`: busy; retry",
        502: "`revocation_failed`: the connection is kept (force=true drops it)",
    },
)
async def delete_connection(request: web.Request) -> web.Response:
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false"):
        raise InvalidRequest("force must be true or false")
    result = await connections.delete(
        request.app[CONTEXT], request.match_info["connection_id"], force=force == "true"
    )
    note_connection(result["id"], None)
    return web.json_response(result)


@routes.patch("/v1/connections/{connection_id}/settings")
@operation(
    "changeSettings",
    "Change settings: merged, validated, tested, then a new current version",
    params=(CONNECTION_ID,),
    answers=ONE,
    errors={400: f"`invalid_request`; {REFUSED}", **TESTED},
)
@json_body(ChangeSettings)
async def change_settings(request: web.Request, body: ChangeSettings) -> web.Response:
    ctx = request.app[CONTEXT]
    conn = await settings_versions.change(ctx, request.match_info["connection_id"], body.settings)
    note_connection(conn.id, conn.tenant_id)
    return web.json_response(connection_view(ctx, conn))


@routes.get("/v1/connections/{connection_id}/settings/versions")
@operation(
    "listSettingsVersions",
    "Kept settings versions, newest first (names only, never values)",
    params=(CONNECTION_ID,),
    answers={200: json_reply("the current version, then the kept ones", SettingsVersions)},
    errors={404: MISSING},
)
async def list_settings_versions(request: web.Request) -> web.Response:
    conn, _ = await connections.get(request.app[CONTEXT], request.match_info["connection_id"])
    note_connection(conn.id, conn.tenant_id)
    kept = settings_versions.versions(conn)
    for item in kept:
        item["created_at"] = iso(item["created_at"])
        if "replaced_at" in item:
            item["replaced_at"] = iso(item["replaced_at"])
    return web.json_response({"versions": kept})


@routes.post("/v1/connections/{connection_id}/settings/rollback")
@operation(
    "rollbackSettings",
    "Bring a kept settings version back, as a new version (tested)",
    params=(CONNECTION_ID,),
    answers=ONE,
    errors={
        400: f"`invalid_request`: version is not an integer; {REFUSED}",
        **TESTED,
        404: "`not_found`: no such connection, or the version is not kept",
    },
)
@json_body(Rollback)
async def rollback_settings(request: web.Request, body: Rollback) -> web.Response:
    ctx = request.app[CONTEXT]
    conn = await settings_versions.rollback(ctx, request.match_info["connection_id"], body.version)
    note_connection(conn.id, conn.tenant_id)
    return web.json_response(connection_view(ctx, conn))
