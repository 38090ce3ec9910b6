"""The Connect flow: admin creates a session; the browser follows the link and comes back."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from broker.config import origin_of
from broker.errors import Conflict, InvalidRequest, InvalidSettings, NotFound, RuntimeUnavailable
from broker.logs import note_connection
from broker.manifest import Manifest
from broker.services.connect import oauth_flow as oauth_connect
from broker.services.connect import sessions as connect_sessions
from broker.services.context import Context
from broker.services.records import ConnectSession
from broker.web.openapi.spec import Operations, json_body, json_reply, page, path, query, redirect
from broker.web.pages import error_page, settings_form
from broker.web.state import CONTEXT
from broker.web.wire import RequestBody, SettingsObject, TenantId, Time, iso, read_form

routes = web.RouteTableDef()
operation = Operations("connect")


class CreateConnectSession(RequestBody):
    tenant_id: TenantId
    connector: str = Field(description="a connector key (unknown: 404)")
    return_url: str = Field(
        max_length=2048,
        description="an absolute URL on an allowed origin",
        json_schema_extra={"format": "uri"},
    )
    connection_id: str | None = Field(None, description="reconnect this connection")
    settings: SettingsObject = Field({}, description="OAuth connectors only, non-secret")


class ConnectLink(BaseModel):
    token: str
    connect_url: str = Field(json_schema_extra={"format": "uri"})
    expires_at: Time


TOKEN = path("token", "the connect session token", {"type": "string", "maxLength": 128})
DEAD_LINK = page("an unknown, used or expired link (an HTML page)")


def dead_link_page() -> web.Response:
    return error_page("invalid_session", "This connect link is unknown, used or expired.", 404)


@routes.post("/v1/connect-sessions")
@operation(
    "createConnectSession",
    "Create the one-time link a Connect button opens (30 minutes)",
    answers={201: json_reply("the link", ConnectLink)},
    errors={
        400: "`invalid_request`, `invalid_settings`: bad field, return_url or settings, "
        "or no OAuth app registered",
        404: "`not_found`: unknown connector or connection",
    },
)
@json_body(CreateConnectSession)
async def create_session(request: web.Request, body: CreateConnectSession) -> web.Response:
    ctx = request.app[CONTEXT]
    token, session = await connect_sessions.create(ctx, body.model_dump(exclude_unset=True))
    note_connection(session.connection_id, session.tenant_id)
    return web.json_response(
        {
            "token": token,
            "connect_url": connect_sessions.connect_url(ctx, token),
            "expires_at": iso(session.expires_at),
        },
        status=201,
    )


@routes.get("/connect/{token}")
@operation(
    "openConnectLink",
    "Open a connect link (browser)",
    params=(TOKEN,),
    answers={
        200: page("API-key connector: the settings form"),
        302: redirect(
            "OAuth connector: to the provider",
            **{"Set-Cookie": "binds the OAuth flow to this browser"},
        ),
        404: DEAD_LINK,
    },
    errors={
        400: "`invalid_request`: no OAuth app registered, or the session's settings "
        "cannot fill the authorization URL",
    },
)
async def open_link(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    session = await connect_sessions.load(ctx, token)
    if session is None:
        return dead_link_page()
    note_connection(session.connection_id, session.tenant_id)
    manifest = ctx.catalog.get(session.connector)
    if manifest.auth_mode == "api_key":
        return _form(ctx, token, manifest, session)
    redirect = await oauth_connect.begin(ctx, token, session)
    response = web.HTTPFound(redirect.location)
    assert redirect.cookie_name is not None
    assert redirect.cookie_value is not None
    response.set_cookie(
        redirect.cookie_name,
        redirect.cookie_value,
        max_age=oauth_connect.STATE_TTL,
        path=oauth_connect.callback_path(ctx, manifest.key),
        httponly=True,
        samesite="Lax",
        secure=ctx.settings.public_url.startswith("https://"),
    )
    response.headers["Cache-Control"] = "no-store"
    raise response


@routes.post("/connect/{token}")
@operation(
    "submitConnectForm",
    "Submit an API-key connector's settings form (browser)",
    description="A session made with `connection_id` changes that connection's settings "
    "(a new settings version, tested first; fields left empty keep their values) "
    "instead of creating one.",
    params=(TOKEN,),
    content={
        "application/x-www-form-urlencoded": {
            "type": "object",
            "additionalProperties": {"type": "string"},
        }
    },
    answers={
        303: redirect("to return_url with status=connected&connection_id=..."),
        400: page("the form again with the problems, an unreadable body, or an OAuth link"),
        404: DEAD_LINK,
    },
    errors={
        409: "`session_in_use`: another tab is submitting this link; `version_conflict`: "
        "the connection changed while its settings were tested; retry",
        502: "`runtime_unavailable`: testConnection could not run",
    },
)
async def submit_settings(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    session = await connect_sessions.load(ctx, token)
    if session is None:
        return dead_link_page()
    note_connection(session.connection_id, session.tenant_id)
    manifest = ctx.catalog.get(session.connector)
    if manifest.auth_mode != "api_key":
        return error_page("invalid_request", "This connector connects with OAuth.", 400)
    values = _typed(manifest.settings_schema, await read_form(request))
    # one submission at a time: three tabs posting the form make one connection
    claim = await connect_sessions.claim(ctx, connect_sessions.token_hash(token))
    if claim is None:
        return dead_link_page()
    try:
        conn = await connect_sessions.connect_with_settings(ctx, claim.session, values)
    except (InvalidRequest, NotFound, Conflict, RuntimeUnavailable) as exc:
        # raised before anything was written: the user may fix the input and send it again
        await connect_sessions.give_back(ctx, claim)
        if not isinstance(exc, InvalidRequest):
            raise
        problems = (
            [str(p) for p in exc.problems] if isinstance(exc, InvalidSettings) else [str(exc)]
        )
        return _form(ctx, token, manifest, claim.session, problems, values)
    await connect_sessions.finish(ctx, claim)
    note_connection(conn.id, conn.tenant_id)
    location = connect_sessions.return_to(
        session.return_url, status="connected", connection_id=conn.id
    )
    raise web.HTTPSeeOther(location)


def _form(
    ctx: Context,
    token: str,
    manifest: Manifest,
    session: ConnectSession,
    problems: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> web.Response:
    return settings_form(
        manifest,
        connect_sessions.connect_path(ctx, token),
        problems,
        {**session.settings, **(values or {})},
        status=400 if problems else 200,
        return_origin=origin_of(session.return_url),
        updating=session.connection_id is not None,
    )


@routes.get("/oauth/callback/{connector}")
@operation(
    "oauthCallback",
    "The provider's redirect back (browser)",
    description="Needs the `broker_oauth_...` cookie set when the flow began.",
    params=(
        path("connector", "the connector key"),
        query("state", "the state the flow began with", required=True),
        query("code", "the authorization code"),
        query("error", "the provider's OAuth error"),
        query("error_description", "the provider's explanation"),
        query("iss", "the issuer (RFC 9207)"),
    ),
    answers={
        302: redirect(
            "to return_url with status=connected&connection_id=... or status=error&error=<code>"
        ),
        400: page(
            "`invalid_callback`: no, unknown, used or expired state, or another browser "
            "(an HTML page: there is no trusted return URL)"
        ),
    },
    errors={404: "`not_found`: the flow's connector is no longer loaded"},
)
async def callback(request: web.Request) -> web.StreamResponse:
    ctx: Context = request.app[CONTEXT]
    connector = request.match_info["connector"]
    try:
        redirect = await oauth_connect.complete(ctx, connector, request.query, request.cookies)
    except oauth_connect.BadCallback as exc:
        return error_page(exc.code, str(exc), 400)
    response = web.HTTPFound(redirect.location)
    response.headers["Cache-Control"] = "no-store"
    # this flow's cookie only (a trusted state got us here): another tab's flow may still be
    # on its way back
    response.del_cookie(
        oauth_connect.cookie_name(request.query["state"]),
        path=oauth_connect.callback_path(ctx, connector),
    )
    raise response


def _typed(schema: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """Form fields are strings; give numbers and booleans their schema type, drop empties."""
    out: dict[str, Any] = {}
    properties = schema.get("properties", {})
    for name, raw in form.items():
        if raw == "":
            continue
        kind = properties.get(name, {}).get("type")
        try:
            if kind == "integer":
                out[name] = int(raw)
            elif kind == "number":
                out[name] = float(raw)
            elif kind == "boolean":
                out[name] = raw.lower() in ("1", "true", "on", "yes")
            else:
                out[name] = raw
        except ValueError:
            out[name] = raw  # let schema validation report the type
    return out
