"""GET /static/{version}/{name}: the Connect pages' stylesheet, script and logo."""

from __future__ import annotations

from aiohttp import web

from broker.config import LOGO_TYPES
from broker.web.openapi.spec import Operations, Reply, path
from broker.web.state import ASSETS

routes = web.RouteTableDef()
operation = Operations("connect")

IMMUTABLE = "public, max-age=31536000, immutable"
# The logo is the operator's file, maybe an SVG: opened on its own it must not run script
# with the broker's origin.
_LOGO_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


@routes.get("/static/{version}/{name}")
@operation(
    "staticAsset",
    "A file the Connect pages load (browser)",
    description="`connect.css`, `connect.js`, and `logo` when BROKER_BRAND_LOGO_FILE is set. "
    "The version is a digest of what is served: the pages always name the current one, and "
    "its answers may be kept forever. Another version gets the current file, not to be kept "
    "(a page from a replica still on the previous release).",
    params=(
        path("version", "a digest of the served files"),
        path("name", "the file", {"type": "string", "enum": ["connect.css", "connect.js", "logo"]}),
    ),
    answers={
        200: Reply(
            "the file: the stylesheet, the script or the logo (its own image type)",
            media=("text/css", "text/javascript", *sorted(set(LOGO_TYPES.values()))),
            headers={"Cache-Control": "immutable under the current version, else no-store"},
        )
    },
    errors={404: "`not_found`: no such file"},
    store=False,
)
async def static_asset(request: web.Request) -> web.Response:
    assets = request.app[ASSETS]
    found = assets.files.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    current = request.match_info["version"] == assets.version
    headers = {
        "Cache-Control": IMMUTABLE if current else "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if not found.content_type.startswith("text/"):
        headers["Content-Security-Policy"] = _LOGO_CSP
    return web.Response(body=found.body, headers={**headers, "Content-Type": found.content_type})
