"""The runtime API (runtime token) and the admin routes that mint tokens and read the audit."""

from __future__ import annotations

import math

from aiohttp import web
from pydantic_core import to_json

from broker.crypto.runtime_tokens import RuntimeGrant, create_runtime_token
from broker.errors import InvalidRequest, RateLimited
from broker.services import connections, runtime_access
from broker.services.records import StoredToken, check_tenant_id
from broker.web.request_guard import error_body
from broker.web.state import CONTEXT, GRANT, KEYRING
from broker.web.wire import iso, read_json

routes = web.RouteTableDef()

DEFAULT_TTL, MIN_TTL, MAX_TTL = 900, 1, 86_400
AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT = 500, 5000
MAX_MIN_TTL = 86_400


@routes.post("/v1/runtime-tokens")
async def mint(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = await read_json(request)
    if set(body) - {"connection_id", "ttl_seconds"}:
        raise InvalidRequest("the body takes connection_id and ttl_seconds only")
    ttl = body.get("ttl_seconds", DEFAULT_TTL)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidRequest(f"ttl_seconds must be an integer from {MIN_TTL} to {MAX_TTL}")
    connection_id = body.get("connection_id")
    if not isinstance(connection_id, str):
        raise InvalidRequest("connection_id is required")
    conn, _ = await connections.get(ctx, connection_id)
    manifest = ctx.catalog.get(conn.connector)
    token, grant = create_runtime_token(
        request.app[KEYRING].current,
        connection_id=conn.id,
        tenant_id=conn.tenant_id,
        connector=conn.connector,
        secret_names=manifest.granted_secrets,
        oauth=manifest.auth_mode == "oauth",
        now=int(ctx.clock()),
        ttl=ttl,
    )
    ctx.audit.record(
        actor="admin",
        action="runtime_token.mint",
        tenant_id=conn.tenant_id,
        connection_id=conn.id,
        name=grant.token_id,
    )
    return web.json_response(
        {"token": token, "token_id": grant.token_id, "expires_at": iso(grant.expires_at)},
        status=201,
    )


@routes.get("/v1/audit")
async def audit(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    tenant_id = check_tenant_id(request.query.get("tenant_id"))
    limit = request.query.get("limit", str(AUDIT_DEFAULT_LIMIT))
    if not limit.isdigit() or not 1 <= int(limit) <= AUDIT_MAX_LIMIT:
        raise InvalidRequest(f"limit must be 1 to {AUDIT_MAX_LIMIT}")
    entries, more = await ctx.audit.query(
        tenant_id,
        request.query.get("connection_id"),
        int(limit),
        before=request.query.get("before") or None,
    )
    return web.json_response(
        {
            "entries": [{**e, "at": iso(e["at"]), "first_at": iso(e["first_at"])} for e in entries],
            "next": more,
        }
    )


def _grant(request: web.Request) -> RuntimeGrant:
    return request[GRANT]


@routes.get("/v1/runtime/secrets/{name}")
async def secret(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    value, version = await runtime_access.read_secret(request.app[CONTEXT], _grant(request), name)
    return _json({"name": name, "value": value, "version": version})


@routes.get("/v1/runtime/oauth/access-token")
async def access_token(request: web.Request) -> web.Response:
    # most calls send no query: skip building the query multidict for them
    raw = request.query.get("min_ttl") if request.query_string else None
    min_ttl: float | None = None
    if raw is not None:
        try:
            min_ttl = float(raw)
        except ValueError:
            min_ttl = -1.0
        if not math.isfinite(min_ttl) or not 0 <= min_ttl <= MAX_MIN_TTL:
            raise InvalidRequest(f"min_ttl must be a number of seconds from 0 to {MAX_MIN_TTL}")
    token = await runtime_access.access_token(
        request.app[CONTEXT], _grant(request), min_ttl=min_ttl
    )
    return _json(_token_view(token))


@routes.post("/v1/runtime/oauth/refresh")
async def force_refresh(request: web.Request) -> web.Response:
    try:
        token = await runtime_access.access_token(
            request.app[CONTEXT], _grant(request), min_ttl=None, force=True
        )
    except RateLimited as exc:
        limited = error_body(exc.code, str(exc), exc.status)
        limited.headers["Retry-After"] = str(exc.retry_after)
        return limited
    return web.json_response(_token_view(token))


def _json(data: dict[str, object]) -> web.Response:
    # bytes straight in (`web.json_response` goes through text and a charset lookup per
    # call), from pydantic-core's encoder, several times faster than json.dumps for a
    # secret read (docs/benchmarks.md)
    return web.Response(body=to_json(data), content_type="application/json")


def _token_view(token: StoredToken) -> dict[str, object]:
    return {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": iso(token.expires_at),
        "scopes": token.scopes,
    }
