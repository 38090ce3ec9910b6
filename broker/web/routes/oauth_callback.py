"""GET /oauth/callback/{connector}: the provider sends the browser back here."""

from __future__ import annotations

from aiohttp import web

from broker.services.connect import oauth_flow as oauth_connect
from broker.services.context import Context
from broker.web import pages
from broker.web.openapi.spec import Operations, page, path, query, redirect
from broker.web.pages import with_pages
from broker.web.state import ASSETS, CONTEXT

routes = web.RouteTableDef()
operation = Operations("connect")


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
        200: page(
            "the flow failed (a session made without skip_interstitial): what went wrong, "
            "with a link to return_url?status=error&error=<code>"
        ),
        302: redirect(
            "to return_url with status=connected&connection_id=... or (a session made with "
            "skip_interstitial) status=error&error=<code>"
        ),
        400: page(
            "`invalid_callback`: no, unknown, used or expired state, or another browser "
            "(an HTML page: there is no trusted return URL)"
        ),
    },
    errors={404: "`not_found`: the flow's connector is no longer loaded"},
)
@with_pages
async def callback(request: web.Request) -> web.StreamResponse:
    ctx: Context = request.app[CONTEXT]
    connector = request.match_info["connector"]
    try:
        redirect = await oauth_connect.complete(ctx, connector, request.query, request.cookies)
    except oauth_connect.BadCallback as exc:
        return pages.error_page(exc.code, str(exc), 400, assets=request.app[ASSETS])
    response: web.StreamResponse
    if redirect.error is not None and redirect.show_page:
        response = pages.callback_failure(
            request.app[ASSETS],
            connector=ctx.catalog.get(connector).name,
            error=redirect.error,
            back_url=redirect.location,
        )
    else:
        response = web.HTTPFound(redirect.location)
        response.headers["Cache-Control"] = "no-store"
    # this flow's cookie only (a trusted state got us here): another tab's flow may still be
    # on its way back
    response.del_cookie(
        oauth_connect.cookie_name(request.query["state"]),
        path=oauth_connect.callback_path(ctx, connector),
    )
    if isinstance(response, web.HTTPFound):
        raise response
    return response
