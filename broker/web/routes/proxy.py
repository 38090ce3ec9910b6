"""The egress proxy (runtime token): a provider call made with the connection's credential,
which the runtime never sees. Two forms, one handler:

    ANY /v1/runtime/proxy                        Broker-Target: https://api.stripe.com/v1/x?y=1
    ANY /v1/runtime/proxy/{scheme}/{host}/{path} the target in the path, for an SDK's base URL

The provider's answer streams back as it arrives (never held whole): its status, its
headers but hop-by-hop ones, cookies and any echoing the credential, its body. What each
step refuses is in `broker.services.relay.forward`.

The time limit: a proxied call takes as long as the provider does (a large export streams
for minutes), so no time-to-response limit applies past the start of the answer; the
provider gets `BROKER_PROXY_TIMEOUT` seconds of silence at most, between any two reads.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from broker.crypto.runtime_tokens import RuntimeGrant
from broker.errors import BrokerError, InvalidRequest, ProviderError
from broker.logs import CURRENT, REQUEST_ID_HEADER
from broker.services import relay
from broker.services.context import Context
from broker.web.openapi.spec import Operations, Reply, path
from broker.web.request_guard import PROXY_PATH
from broker.web.state import CONTEXT, GRANT

log = logging.getLogger("broker.proxy")
routes = web.RouteTableDef()
operation = Operations("proxy")

PREFIX = PROXY_PATH
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""Every method but HEAD (which aiohttp routes with GET) and CONNECT/TRACE (never proxied)."""
SMALL_ANSWER = 64 * 1024
"""An answer of a declared length up to this is read whole and sent in one piece."""

ANSWER = {
    200: Reply(
        "the provider's answer as it sent it: any status, its headers (less hop-by-hop ones, "
        "Set-Cookie and any quoting the credential) and its body, streamed",
        media="*/*",
    )
}
ERRORS = {
    400: "`invalid_request`: no or bad target; `not_oauth`",
    403: "`egress_denied`: the target (or a redirect) is outside the manifest's permissions.http",
    404: "`not_found`: the setting connection.httpAuth names is not set",
    409: "`needs_reauth`: the tenant must reconnect",
    413: "`payload_too_large`: the body is over BROKER_PROXY_MAX_BODY_BYTES",
    429: "`rate_limited`: over the connection's connection.rateLimit; retry after "
    "`Retry-After` seconds (a provider's own 429 passes through as it is)",
    502: "`provider_error`: the provider could not be reached",
}
BODY = {"*/*": {"type": "string", "format": "binary"}}
TARGET_HEADER = relay.TARGET_HEADER


def _target_from_header(request: web.Request) -> str:
    target = request.headers.get(TARGET_HEADER)
    if not target:
        raise InvalidRequest(f"the {TARGET_HEADER} header names no target URL")
    if request.query_string:
        raise InvalidRequest(f"the query belongs in {TARGET_HEADER}, not on the proxy URL")
    return target


def _target_from_path(request: web.Request) -> str:
    # the raw path: what the runtime encoded stays encoded (the target is normalized and
    # checked after this, the same as a Broker-Target URL)
    rest = request.raw_path[len(PREFIX) + 1 :]
    scheme, _, rest = rest.partition("/")
    if scheme not in ("http", "https") or not rest:
        raise InvalidRequest("the path must be /v1/runtime/proxy/<http|https>/<host>/<path>")
    return f"{scheme}://{rest}"


async def proxied_call(request: web.Request, target: str) -> web.StreamResponse:
    ctx, grant = request.app[CONTEXT], request[GRANT]
    started = time.perf_counter()
    call = relay.ProxyCall(
        actor=f"runtime:{grant.token_id}",
        tenant_id=grant.tenant_id,
        connection_id=grant.connection_id,
        connector=grant.connector,
        method=request.method,
    )
    try:
        return await _relay(request, ctx, grant, call, target)
    except BrokerError as exc:
        call.failure = exc.code
        raise
    finally:
        call.record(ctx.audit, time.perf_counter() - started)


async def _relay(
    request: web.Request,
    ctx: Context,
    grant: RuntimeGrant,
    call: relay.ProxyCall,
    target: str,
) -> web.StreamResponse:
    manifest = ctx.catalog.get(grant.connector)
    route = relay.check_target(ctx.egress, grant, manifest, target, call)
    limit = ctx.settings.proxy_max_body_bytes
    try:
        body = await relay.receive(
            request.content,
            relay.declared_length(request.headers),
            present=request.body_exists,
            hold=grant.oauth and request.method in relay.IDEMPOTENT,
            limit=limit,
        )
    except BrokerError as exc:
        call.refused(exc.code, "body_size")
        raise
    client_timeout = _client_timeout(ctx.settings.proxy_timeout)
    async with relay.forward(
        ctx, grant, manifest, call, route, request.headers, body, client_timeout
    ) as answer:
        upstream = answer.response
        call.status = upstream.status
        scope = CURRENT.get()
        if scope is not None:
            answer.headers[REQUEST_ID_HEADER] = scope.request_id
        length = upstream.content_length
        if length is not None and length <= SMALL_ANSWER and request.method != "HEAD":
            return await _whole(upstream, answer, call)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(answer.headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                call.received += len(chunk)
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the answer has started: there is no status left to change. Cutting the
            # connection tells the runtime the body is incomplete (its length or its last
            # chunk never comes)
            log.warning("proxy: the provider's answer broke off (%s)", type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response


@functools.lru_cache(maxsize=8)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """The provider's time limits, made once per setting (a frozen value)."""
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)


async def _whole(
    upstream: aiohttp.ClientResponse, answer: relay.Answer, call: relay.ProxyCall
) -> web.Response:
    """A small answer read whole, then sent in one write: cheaper than a stream's three
    (headers, body, end) for the JSON most API calls answer, and a provider breaking off
    mid-answer is still a clean 502 here, since nothing was sent yet."""
    try:
        body = await upstream.read()
    except (aiohttp.ClientError, TimeoutError):
        raise ProviderError("the provider's answer broke off") from None
    call.received = len(body)
    return web.Response(
        status=upstream.status, reason=upstream.reason, body=body, headers=answer.headers
    )


def _declare(method: str, form: str, target_of: Callable[[web.Request], str]) -> None:
    """One route per method and form, each its own operation (an OpenAPI operation has one
    method; aiohttp's "*" route would have none to show)."""

    async def proxied(request: web.Request) -> web.StreamResponse:
        return await proxied_call(request, target_of(request))

    by_path = form == "path"
    operation(
        f"proxy{method.capitalize()}{'ByPath' if by_path else ''}",
        f"{method} through the egress proxy, the target "
        + ("in the path (a provider SDK's base URL)" if by_path else "in Broker-Target"),
        answers=ANSWER,
        errors=ERRORS,
        params=PATH_PARAMS if by_path else (),
        content=BODY if method not in ("GET", "DELETE", "OPTIONS") else None,
        description=(PATH_DESCRIPTION if by_path else TARGET_DESCRIPTION) + SDK_AUTH,
    )(proxied)
    routes.route(method, PATH_FORM if by_path else PREFIX)(proxied)


PATH_FORM = PREFIX + r"/{scheme}/{host}/{path:[\s\S]*}"  # any character: a newline too
PATH_PARAMS = (
    path("scheme", "`http` or `https`"),
    path("host", "the provider's host, with `:port` where it is not the scheme's default"),
    path("path", "the provider's path; the query string follows as the provider gets it"),
)
TARGET_DESCRIPTION = (
    f"The target is the absolute URL in the `{TARGET_HEADER}` header "
    "(e.g. `https://api.stripe.com/v1/customers?limit=100`); method, other headers and "
    "body are forwarded with the connection's credential injected."
)
PATH_DESCRIPTION = (
    "A provider's SDK takes `<broker>/v1/runtime/proxy/https/<host>` as its base URL and the "
    "runtime token as its API key."
)
SDK_AUTH = (
    " The runtime token goes in `Authorization: Bearer`, or where the connector's "
    "`connection.httpAuth` puts its credential (as the provider's SDK sends its key): HTTP "
    "Basic (the password when httpAuth names one, else the username), the header or the "
    "query parameter it names (in the header form, in the `Broker-Target` URL's query)."
)

for _method in METHODS:
    _declare(_method, "header", _target_from_header)
    _declare(_method, "path", _target_from_path)
