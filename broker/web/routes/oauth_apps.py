"""Admin routes for OAuth app registrations (secrets are write-only)."""

from __future__ import annotations

from aiohttp import web

from broker.services import oauth_apps
from broker.services.records import OAuthApp
from broker.web.state import CONTEXT
from broker.web.wire import iso, read_json

routes = web.RouteTableDef()


def _view(app: OAuthApp) -> dict[str, object]:
    view = oauth_apps.redacted(app)
    view["updated_at"] = iso(app.updated_at)
    return view


@routes.put("/v1/oauth-apps/{credential_key}")
async def put_oauth_app(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    app = await oauth_apps.put(ctx, request.match_info["credential_key"], await read_json(request))
    return web.json_response(_view(app))


@routes.get("/v1/oauth-apps/{credential_key}")
async def get_oauth_app(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    tenant_id = request.query.get("tenant_id")
    app = await oauth_apps.get(ctx, request.match_info["credential_key"], tenant_id)
    return web.json_response(_view(app))
