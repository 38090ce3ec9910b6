"""The per-route request guard: body limit, authentication by path, JSON errors, metrics,
the request id and the log scope.

Every route's handler is wrapped by `handled` when the app is built, and one catch-all route
(`UNMATCHED`) answers paths and methods no route has, so every request, routed or not, goes
through `handle`. This is an aiohttp middleware in all but the mechanism: aiohttp's chain
(a partial per request plus its own `_fix_request_current_app` layer) costs a measurable
share of a runtime read (docs/benchmarks.md) for nothing a per-route wrapper does not do."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import NoReturn

from aiohttp import web
from aiohttp.typedefs import Handler

from broker import metrics
from broker.crypto.runtime_tokens import RuntimeGrant, TokenVerifier
from broker.errors import (
    BrokerError,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unauthorized,
)
from broker.logs import REQUEST_ID_HEADER, begin_request, note_connection
from broker.web import proxy_auth
from broker.web.pages import error_page
from broker.web.rate_limits import Limit
from broker.web.state import ADMIN_TOKENS, CONTEXT, DEADLINES, GRANT, KEYRING, SETTINGS

log = logging.getLogger("broker.web")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


BROKER_ERROR_HEADER = "Broker-Error"
"""On every error the broker itself answers: how a runtime tells the broker's refusal on the
egress proxy (`egress_denied`, `rate_limited`) from a provider's own answer passed through."""


def error_body(code: str, message: str, status: int) -> web.Response:
    headers = {BROKER_ERROR_HEADER: code}
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


BROWSER_PATHS = ("/connect/", "/oauth/callback/")
"""Routes a tenant's browser opens: their errors are pages, the same code and message."""


def _error(request: web.Request, code: str, message: str, status: int) -> web.Response:
    if request.path.startswith(BROWSER_PATHS):
        return error_page(code, message, status)
    return error_body(code, message, status)


def _failed(request: web.Request, exc: BrokerError) -> web.Response:
    response = _error(request, exc.code, str(exc), exc.status)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def handled(handler: Handler, limit: Limit | None = None) -> Handler:
    """`handler` behind `handle`, with the route's rate limit (`rate_limits.for_route`):
    what the app registers for every route (`__wrapped__` leads the OpenAPI generator to
    the operation declared for `handler`)."""

    @functools.wraps(handler)
    async def handler_behind_guard(request: web.Request) -> web.StreamResponse:
        return await handle(request, handler, limit)

    return handler_behind_guard


UNMATCHED = "unmatched"
"""The catch-all route's name, and the metrics label of requests no route matched."""
UNMATCHED_PATH = r"/{unmatched_path:[\s\S]*}"  # `.` would miss a path with a newline


async def unmatched(request: web.Request) -> NoReturn:
    """The catch-all route (registered last, so aiohttp tries it after every other one):
    405 with `Allow` where another route has the path, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != UNMATCHED:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


async def handle(
    request: web.Request, handler: Handler, limit: Limit | None = None
) -> web.StreamResponse:
    """Every request (each step here costs every request, the runtime hot path included):
    open its log scope, start its clock (`deadlines`), `guard` it, take from its rate limit,
    then turn every failure into `{"error", "message"}`, count it, and answer its request
    id. Unexpected errors say nothing more (an exception's text may hold a value we must
    not echo)."""
    started = time.perf_counter()
    route = route_template(request)
    scope = begin_request(request.headers.get(REQUEST_ID_HEADER), request.method, route)
    deadlines = request.app[DEADLINES]
    task = deadlines.enter(request)
    try:
        guard(request)
        if limit is not None:
            await limit(request)
        response = await handler(request)
    except asyncio.CancelledError:
        if not deadlines.cut(task):
            raise
        response = _failed(request, RequestTimeout(f"no answer within {deadlines.seconds:g} s"))
    except BrokerError as exc:
        response = _failed(request, exc)
    except web.HTTPRequestEntityTooLarge:
        response = _failed(request, PayloadTooLarge("request body is too large"))
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects
            exc.headers[REQUEST_ID_HEADER] = scope.request_id
            _count(request.method, route, exc.status, started)
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = _error(request, code, exc.reason, exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unhandled error on %s %s", request.method, route)
        response = _error(request, "internal_error", "internal error", 500)
    finally:
        deadlines.leave(task)
    response.headers[REQUEST_ID_HEADER] = scope.request_id
    _count(request.method, route, response.status, started)
    return response


def route_template(request: web.BaseRequest) -> str:
    """The request's route as registered (`/connect/{token}`), never its path: a path can
    hold a connect token. `unmatched` where no route matched (or before routing)."""
    match_info = None
    if isinstance(request, web.Request):
        try:
            match_info = request.match_info
        except AssertionError:  # aiohttp asserts when routing never ran (an unparseable request)
            match_info = None
    resource = match_info.route.resource if match_info is not None else None
    return UNMATCHED if resource is None or resource.name == UNMATCHED else resource.canonical


def _count(method: str, route: str, status: int, started: float) -> None:
    metrics.observe_request(method, route, status, time.perf_counter() - started)


VERIFIER = TokenVerifier()


def guard(request: web.Request) -> None:
    """Body limit and authentication, before any handler runs. Authentication is decided by
    path, so a new route cannot forget its check: /v1/runtime/* takes a runtime token
    (verified without a store round trip), every other /v1/* route an admin token.

    A declared oversized body is refused here; a chunked one is capped when read
    (`client_max_size`). The egress proxy has its own limit (BROKER_PROXY_MAX_BODY_BYTES),
    applied as it streams the body on."""
    limit = request.app[SETTINGS].max_body_bytes
    path = request.path
    too_large = request.content_length is not None and request.content_length > limit
    if too_large and not is_proxy_path(path):
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if path.startswith("/v1/"):
        if is_runtime_path(path):
            grant = _runtime_grant(request, path)
            request[GRANT] = grant
            note_connection(grant.connection_id, grant.tenant_id)
        else:
            _check_admin(request)


def _runtime_grant(request: web.Request, path: str) -> RuntimeGrant:
    """A runtime route's grant: from `Authorization: Bearer`, or on the proxy's paths from
    wherever the connector's SDK sends its key (`proxy_auth`)."""
    keyring = request.app[KEYRING].current
    if not is_proxy_path(path):
        return VERIFIER.verify(keyring, bearer_token(request), now=time.time())
    place, token = proxy_auth.candidate(request, target_header=path == PROXY_PATH)
    grant = VERIFIER.verify(keyring, token, now=time.time())
    if place != proxy_auth.BEARER:
        manifest = request.app[CONTEXT].catalog.manifests.get(grant.connector)
        auth = manifest.connection.http_auth if manifest is not None else None
        proxy_auth.check_place(place, grant, auth)
    return grant


def is_runtime_path(path: str) -> bool:
    return path.startswith("/v1/runtime/")


PROXY_PATH = "/v1/runtime/proxy"


def is_proxy_path(path: str) -> bool:
    return path == PROXY_PATH or path.startswith(PROXY_PATH + "/")


def is_admin_path(path: str) -> bool:
    return path.startswith("/v1/") and not is_runtime_path(path)


def _check_admin(request: web.Request) -> None:
    if not request.app[ADMIN_TOKENS].check(bearer_token(request)):
        raise Unauthorized("invalid admin token")


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()
