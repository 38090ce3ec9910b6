"""The Connect flow: admin creates a session; the browser follows the link and comes back."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from broker.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    RuntimeUnavailable,
)
from broker.logs import note_connection
from broker.services.connect import oauth_flow as oauth_connect
from broker.services.connect import sessions as connect_sessions
from broker.services.context import Context
from broker.services.records import ConnectSession
from broker.web import pages
from broker.web.assets import Assets
from broker.web.openapi.spec import (
    Operations,
    json_body,
    json_reply,
    page,
    path,
    redirect,
)
from broker.web.pages import with_pages
from broker.web.session_form import cancel_url, session_form, setup_section
from broker.web.settings_form import FormState, failed_form, typed_values
from broker.web.state import ASSETS, CONTEXT
from broker.web.wire import (
    RequestBody,
    SettingsObject,
    TenantId,
    Time,
    iso,
    read_form,
)

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
    skip_interstitial: bool = Field(
        False,
        description="OAuth connectors: the dashboard shows its own pages. The link redirects "
        "straight to the provider and a failed callback straight back to return_url with "
        "status=error (no interstitial, no failure page of the broker's).",
    )


class ConnectLink(BaseModel):
    token: str
    connect_url: str = Field(json_schema_extra={"format": "uri"})
    expires_at: Time


TOKEN = path("token", "the connect session token", {"type": "string", "maxLength": 128})
DEAD_LINK = page(
    "an unknown, used or expired link (an HTML page; a used or expired one that is still "
    "on record links back to its return_url)"
)
TO_PROVIDER = redirect("to the provider", **{"Set-Cookie": "binds the OAuth flow to this browser"})


async def dead_link_page(ctx: Context, assets: Assets, token: str) -> web.Response:
    dead = await connect_sessions.dead_link(ctx, token)
    if dead is None:
        return pages.dead_link_page(assets, reason=None, connector=None, back_url=None)
    return pages.dead_link_page(
        assets, reason=dead.reason, connector=_name(ctx, dead.connector), back_url=dead.back_url
    )


def _name(ctx: Context, connector: str) -> str:
    manifest = ctx.catalog.manifests.get(connector)
    return manifest.name if manifest is not None else connector


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
        200: page(
            "API-key connector: the settings form; OAuth connector: the interstitial (who, "
            "where, which access) whose button continues to the provider"
        ),
        302: TO_PROVIDER,
        404: DEAD_LINK,
    },
    description="An OAuth session made with `skip_interstitial` redirects to the provider "
    "at once (302).",
    errors={
        400: "`invalid_request`: no OAuth app registered, or the session's settings "
        "cannot fill the authorization URL",
    },
)
@with_pages
async def open_link(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    assets = request.app[ASSETS]
    token = request.match_info["token"]
    session = await connect_sessions.load(ctx, token)
    if session is None:
        return await dead_link_page(ctx, assets, token)
    note_connection(session.target_id, session.tenant_id)
    manifest = ctx.catalog.get(session.connector)
    if manifest.auth_mode == "api_key":
        return session_form(
            ctx, assets, token, manifest, session, FormState(values=session.settings)
        )
    if session.skip_interstitial:
        return await _to_provider(ctx, token, session)
    preview = oauth_connect.preview(manifest, session)
    return pages.interstitial(
        assets,
        connector=manifest.name,
        provider_origin=preview.provider_origin,
        provider_host=preview.provider_host,
        scopes=preview.scopes,
        action=connect_sessions.connect_path(ctx, token) + "/continue",
        cancel_url=cancel_url(session),
        reconnecting=session.connection_id,
        setup=setup_section(ctx, manifest, session),
    )


@routes.post("/connect/{token}/continue")
@operation(
    "continueConnect",
    "Continue from the interstitial to the provider (browser)",
    params=(TOKEN,),
    answers={
        302: TO_PROVIDER,
        400: page("an API-key link, no OAuth app registered, or unfillable settings"),
        404: DEAD_LINK,
    },
    content={"application/x-www-form-urlencoded": {"type": "object"}},
)
@with_pages
async def continue_to_provider(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    session = await connect_sessions.load(ctx, token)
    if session is None:
        return await dead_link_page(ctx, request.app[ASSETS], token)
    note_connection(session.target_id, session.tenant_id)
    if ctx.catalog.get(session.connector).auth_mode != "oauth":
        raise InvalidRequest("this link opens a settings form: there is no provider to go to")
    return await _to_provider(ctx, token, session)


async def _to_provider(ctx: Context, token: str, session: ConnectSession) -> web.StreamResponse:
    redirect = await oauth_connect.begin(ctx, token, session)
    response = web.HTTPFound(redirect.location)
    assert redirect.cookie_name is not None
    assert redirect.cookie_value is not None
    response.set_cookie(
        redirect.cookie_name,
        redirect.cookie_value,
        max_age=oauth_connect.STATE_TTL,
        path=oauth_connect.callback_path(ctx, session.connector),
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
        400: page(
            "the form again: each problem beside its field, the runtime's message above; "
            "entered values kept but secrets; or an unreadable body, or an OAuth link"
        ),
        404: DEAD_LINK,
    },
    errors={
        409: "`session_in_use`: another tab is submitting this link; `version_conflict`: "
        "the connection changed while its settings were tested; retry",
        502: "`runtime_unavailable`: testConnection could not run",
    },
)
@with_pages
async def submit_settings(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    assets = request.app[ASSETS]
    token = request.match_info["token"]
    session = await connect_sessions.load(ctx, token)
    if session is None:
        return await dead_link_page(ctx, assets, token)
    note_connection(session.target_id, session.tenant_id)
    manifest = ctx.catalog.get(session.connector)
    if manifest.auth_mode != "api_key":
        raise InvalidRequest("This connector connects with OAuth.")
    values = typed_values(manifest.settings_schema, await read_form(request))
    # one submission at a time: three tabs posting the form make one connection
    claim = await connect_sessions.claim(ctx, connect_sessions.token_hash(token))
    if claim is None:
        return await dead_link_page(ctx, assets, token)
    try:
        conn = await connect_sessions.connect_with_settings(ctx, claim.session, values)
    except (InvalidRequest, NotFound, Conflict, RuntimeUnavailable) as exc:
        # raised before anything was written: the user may fix the input and send it again
        await connect_sessions.give_back(ctx, claim)
        if not isinstance(exc, InvalidRequest):
            raise
        state = failed_form(
            manifest,
            values,
            exc,
            kept=claim.session.settings,
            updating=claim.session.connection_id is not None,
        )
        return session_form(ctx, assets, token, manifest, claim.session, state)
    await connect_sessions.finish(ctx, claim)
    note_connection(conn.id, conn.tenant_id)
    location = connect_sessions.return_to(
        session.return_url, status="connected", connection_id=conn.id
    )
    raise web.HTTPSeeOther(location)
