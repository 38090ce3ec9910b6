"""GET /v1/connectors: the loaded catalog, as an admin dashboard needs it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.manifest import Manifest
from broker.web.state import CATALOG

routes = web.RouteTableDef()


def describe(manifest: Manifest) -> dict[str, Any]:
    oauth = manifest.connection.oauth
    return {
        "key": manifest.key,
        "name": manifest.name,
        "provider": manifest.provider,
        "kind": manifest.kind,
        "version": manifest.version,
        "auth_mode": manifest.auth_mode,
        "oauth_type": oauth.type if oauth else None,
        "settings_schema": manifest.settings_schema,
        "secrets": sorted(manifest.granted_secrets),
        "webhooks": manifest.webhooks.auth if manifest.webhooks else None,
    }


@routes.get("/v1/connectors")
async def list_connectors(request: web.Request) -> web.Response:
    return web.json_response({"connectors": [describe(m) for m in request.app[CATALOG]]})
