"""Liveness and readiness: /healthz answers while the process runs, /readyz while the store does."""

from __future__ import annotations

from aiohttp import web

from broker.errors import StoreUnavailable
from broker.web.state import KEYRING, STORE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        return web.json_response(
            {"status": "unavailable", "error": exc.code, "message": str(exc)}, status=503
        )
    holder = request.app[KEYRING]
    keyring = {
        "primary": holder.current.primary,
        "keys": holder.current.ids,
        "reload_error": holder.last_error,
    }
    return web.json_response({"status": "ready", "store": "ok", "keyring": keyring})
