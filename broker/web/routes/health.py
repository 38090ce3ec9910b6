"""Liveness and readiness: /healthz answers while the process runs, /readyz while the store does."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from broker.errors import StoreUnavailable
from broker.web.openapi.spec import Operations, json_reply
from broker.web.state import KEYRING, SHUTDOWN, STORE

routes = web.RouteTableDef()
operation = Operations("health")


class Alive(BaseModel):
    status: Literal["ok"]


class KeyringInUse(BaseModel):
    primary: str
    keys: list[str]
    reload_error: str | None


class Ready(BaseModel):
    status: Literal["ready"]
    store: Literal["ok"]
    keyring: KeyringInUse


class Unavailable(BaseModel):
    status: Literal["unavailable"]
    error: str
    message: str


@routes.get("/healthz")
@operation("healthz", "Liveness", answers={200: json_reply("the process runs", Alive)}, store=False)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@operation(
    "readyz",
    "Readiness: the store is reachable, the keyring in use",
    answers={
        200: json_reply("ready", Ready),
        503: json_reply(
            "not: `store_unavailable`: the store cannot be reached; `shutting_down`: the "
            "process is stopping (SIGTERM), its load balancer should send no more",
            Unavailable,
        ),
    },
)
async def readyz(request: web.Request) -> web.Response:
    if request.app[SHUTDOWN].began is not None:
        return web.json_response(
            {"status": "unavailable", "error": "shutting_down", "message": "shutting down"},
            status=503,
        )
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
