"""The runtime API (runtime token) and the admin routes that mint tokens and read the audit."""

from __future__ import annotations

import math
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic_core import to_json

from broker.crypto.runtime_tokens import RuntimeGrant, create_runtime_token
from broker.errors import InvalidRequest
from broker.logs import note_connection
from broker.services import connections, runtime_access
from broker.services.record_ids import check_tenant_id
from broker.services.records import StoredToken
from broker.web.openapi.spec import (
    Operations,
    json_body,
    json_reply,
    page_size,
    path,
    query,
    schema_of,
)
from broker.web.state import CONTEXT, GRANT, KEYRING
from broker.web.wire import RequestBody, TenantId, Time, Version, iso

routes = web.RouteTableDef()
operation = Operations("runtime")

DEFAULT_TTL, MIN_TTL, MAX_TTL = 900, 1, 86_400
AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT = 500, 5000
MAX_MIN_TTL = 86_400


class MintRuntimeToken(RequestBody):
    connection_id: str = Field(description="a connection id (other shapes: 404)")
    ttl_seconds: Annotated[int, Field(ge=MIN_TTL, le=MAX_TTL)] = DEFAULT_TTL


class RuntimeToken(BaseModel):
    token: str
    token_id: str
    expires_at: Time


class AuditEntry(BaseModel):
    at: Time
    first_at: Time
    count: int = Field(ge=1)
    actor: str = Field(description="`admin` or `runtime:<token id>`")
    action: str
    tenant_id: TenantId
    connection_id: str | None
    name: str | None = Field(
        description="a name, never a value; null on a `not_granted` `secret.read`: the reads "
        "of ungranted names past the first 20 distinct ones that minute"
    )
    outcome: str = Field(description="`ok` or an error code")


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next: str | None = Field(description="pass as `before` for older entries")


class Secret(BaseModel):
    name: str
    value: str
    version: Version


class AccessToken(BaseModel):
    access_token: str
    token_type: str
    expires_at: Time | None
    scopes: list[str]


TOKEN = {200: json_reply("valid for at least the margin (or min_ttl)", AccessToken)}
NOT_OAUTH = "`not_oauth`: this connection does not use OAuth"
REFRESH_ERRORS = {
    400: NOT_OAUTH,
    409: "`needs_reauth`: the tenant must reconnect",
    502: "`provider_error`: the provider failed and no valid token is left",
    503: "`refresh_timeout`: a refresh took too long; "
    "`store_unavailable`: the store cannot be reached",
}


@routes.post("/v1/runtime-tokens")
@operation(
    "mintRuntimeToken",
    "Mint a runtime token scoped to one connection and its granted secrets",
    answers={201: json_reply("the token", RuntimeToken)},
    errors={
        400: "`invalid_request`: bad field or ttl_seconds",
        404: "`not_found`: no such connection",
    },
)
@json_body(MintRuntimeToken)
async def mint(request: web.Request, body: MintRuntimeToken) -> web.Response:
    ctx = request.app[CONTEXT]
    conn, _ = await connections.get(ctx, body.connection_id)
    note_connection(conn.id, conn.tenant_id)
    manifest = ctx.catalog.get(conn.connector)
    token, grant = create_runtime_token(
        request.app[KEYRING].current,
        connection_id=conn.id,
        tenant_id=conn.tenant_id,
        connector=conn.connector,
        secret_names=manifest.granted_secrets,
        oauth=manifest.auth_mode == "oauth",
        now=int(ctx.clock()),
        ttl=body.ttl_seconds,
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
@operation(
    "listAudit",
    "Who read or changed what (never a value), newest first",
    tag="audit",
    params=(
        query("tenant_id", "the tenant", schema_of(TenantId), required=True),
        query("connection_id", "only this connection's entries"),
        page_size(AUDIT_MAX_LIMIT, AUDIT_DEFAULT_LIMIT),
        query("before", "the `next` cursor of an earlier page"),
    ),
    answers={200: json_reply("a page", AuditPage)},
    errors={400: "`invalid_request`: bad tenant_id, limit or before"},
)
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
@operation(
    "readSecret",
    "Read a granted setting (Secrets.get)",
    params=(path("name", "the setting name"),),
    answers={200: json_reply("non-string settings come as JSON text", Secret)},
    errors={
        403: "`not_granted`: not in the manifest's permissions.secrets",
        404: "`not_found`: granted but not set",
    },
)
async def secret(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    value, version = await runtime_access.read_secret(request.app[CONTEXT], _grant(request), name)
    return _json({"name": name, "value": value, "version": version})


@routes.get("/v1/runtime/oauth/access-token")
@operation(
    "getAccessToken",
    "The access token, refreshed if needed (OAuth.accessToken)",
    params=(
        query(
            "min_ttl",
            "seconds it must still live (not the margin)",
            {"type": "number", "minimum": 0, "maximum": MAX_MIN_TTL},
        ),
    ),
    answers=TOKEN,
    errors={**REFRESH_ERRORS, 400: f"`invalid_request`: bad min_ttl; {NOT_OAUTH}"},
)
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
@operation(
    "forceRefresh",
    "Refresh now (the provider said 401); within BROKER_FORCED_REFRESH_INTERVAL of the "
    "last forced call to the provider, the current token while it is valid",
    answers=TOKEN,
    errors={
        **REFRESH_ERRORS,
        429: "`rate_limited`: forced moments ago, or the provider asked for a pause (its "
        "Retry-After), and the token has expired since; retry after `Retry-After` seconds",
    },
)
async def force_refresh(request: web.Request) -> web.Response:
    # a RateLimited answers 429 with its Retry-After (the request guard)
    token = await runtime_access.access_token(
        request.app[CONTEXT], _grant(request), min_ttl=None, force=True
    )
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
