"""Admin routes for connections: create (API key), list per tenant, read."""

from __future__ import annotations

from aiohttp import web

from broker.errors import InvalidRequest
from broker.services import connections, settings_versions
from broker.web.state import CONTEXT
from broker.web.wire import connection_view, iso, read_json

routes = web.RouteTableDef()


@routes.post("/v1/connections")
async def create_connection(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = await read_json(request)
    unknown = set(body) - {"tenant_id", "connector", "settings"}
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    conn = await connections.create_direct_connection(
        ctx, body.get("tenant_id"), body.get("connector"), body.get("settings", {})
    )
    return web.json_response(connection_view(ctx, conn), status=201)


@routes.get("/v1/connections")
async def list_connections(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    tenant_id = request.query.get("tenant_id")
    if tenant_id is None:
        raise InvalidRequest("tenant_id is required")
    found = await connections.list_for_tenant(ctx, tenant_id)
    return web.json_response({"connections": [connection_view(ctx, c) for c in found]})


@routes.get("/v1/connections/{connection_id}")
async def get_connection(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    conn, _ = await connections.get(ctx, request.match_info["connection_id"])
    return web.json_response(connection_view(ctx, conn))


@routes.delete("/v1/connections/{connection_id}")
async def delete_connection(request: web.Request) -> web.Response:
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false"):
        raise InvalidRequest("force must be true or false")
    result = await connections.delete(
        request.app[CONTEXT], request.match_info["connection_id"], force=force == "true"
    )
    return web.json_response(result)


@routes.patch("/v1/connections/{connection_id}/settings")
async def change_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = await read_json(request)
    if set(body) != {"settings"}:
        raise InvalidRequest('the body must be {"settings": {...}}')
    conn = await settings_versions.change(
        ctx, request.match_info["connection_id"], body["settings"]
    )
    return web.json_response(connection_view(ctx, conn))


@routes.get("/v1/connections/{connection_id}/settings/versions")
async def list_settings_versions(request: web.Request) -> web.Response:
    conn, _ = await connections.get(request.app[CONTEXT], request.match_info["connection_id"])
    kept = settings_versions.versions(conn)
    for item in kept:
        item["created_at"] = iso(item["created_at"])
        if "replaced_at" in item:
            item["replaced_at"] = iso(item["replaced_at"])
    return web.json_response({"versions": kept})


@routes.post("/v1/connections/{connection_id}/settings/rollback")
async def rollback_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = await read_json(request)
    if set(body) != {"version"}:
        raise InvalidRequest('the body must be {"version": <number>}')
    conn = await settings_versions.rollback(
        ctx, request.match_info["connection_id"], body["version"]
    )
    return web.json_response(connection_view(ctx, conn))
