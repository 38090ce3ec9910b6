"""One proxied call, from the runtime's request to the provider's final answer.

    check the target against permissions.http        403 egress_denied
    spend one request of connection.rateLimit         429 rate_limited + Retry-After
    read the credential (refreshing an OAuth token as the runtime read would)
    send; on a redirect, check the new target and follow it (5 at most), the credential
      only while the host is the original one
    on a 401 of an OAuth connection: one forced refresh (single-flight, rate-limited as
      POST /v1/runtime/oauth/refresh is) and one retry, if the method is idempotent and
      the body is still at hand and the token did change
    answer with the provider's status, headers (`headers.to_runtime`) and streamed body

429 and 5xx are the provider's and pass through as they are, `Retry-After` included: the
proxy never retries on its own what the runtime did not ask for twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

from broker.crypto.runtime_tokens import RuntimeGrant
from broker.errors import BrokerError, EgressDenied, InvalidRequest, PayloadTooLarge, ProviderError
from broker.manifest import Manifest
from broker.services import runtime_access
from broker.services.context import Context
from broker.services.proxy import Egress, EgressRoute
from broker.services.relay.body import RequestBody
from broker.services.relay.budget import spend
from broker.services.relay.credentials import (
    NONE,
    Credential,
    bearer,
    from_settings,
    query_name,
)
from broker.services.relay.headers import Headers, to_provider, to_runtime
from broker.services.relay.observed import ProxyCall
from broker.services.relay.opened import opened_for
from broker.store import keys

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
CONTENT_HEADERS = ("Content-Type", "Content-Encoding", "Content-Language", "Content-Location")


@dataclass
class Answer:
    """The provider's final answer, as the runtime gets it."""

    response: aiohttp.ClientResponse
    headers: CIMultiDict[str]


async def credential_of(
    ctx: Context, grant: RuntimeGrant, manifest: Manifest, *, force: bool = False
) -> Credential:
    if grant.oauth:
        token = await runtime_access.current_token(ctx, grant, min_ttl=None, force=force)
        return bearer(token.access_token)
    auth = manifest.connection.http_auth
    if auth is None:
        raise InvalidRequest(
            f"connector {manifest.key!r} declares no connection.httpAuth: the proxy has no "
            "credential to put on its calls"
        )
    key = keys.connection(grant.connection_id)
    opened = opened_for(ctx.store)
    found = opened.get(key, ctx.store.cached_version(key), grant, auth)
    if found is not None:
        return found
    view, version = await runtime_access.connection_view(ctx, grant)
    credential = from_settings(auth, view.settings, view.secrets)
    opened.put(key, version, grant, auth, credential)
    return credential


def _refused(call: ProxyCall, rule: str, exc: BrokerError) -> BrokerError:
    call.refused(exc.code, rule)
    return exc


def check_target(
    egress: Egress, grant: RuntimeGrant, manifest: Manifest, target: str, call: ProxyCall
) -> EgressRoute:
    """The checked route to `target`. A query parameter named as the credential's is
    dropped first: the broker sets that one, a runtime cannot."""
    if not grant.oauth:
        target = query_name(manifest.connection.http_auth).scrubbed(target)
    try:
        route = egress.check(manifest.permissions.http, target)
    except EgressDenied as exc:
        raise _refused(call, "target", exc) from None
    call.host = route.target.where
    call.path = route.target.path
    pattern = route.allowed.pattern
    call.host_pattern = ("*." if pattern.wildcard else "") + pattern.host
    return route


@asynccontextmanager
async def forward(
    ctx: Context,
    grant: RuntimeGrant,
    manifest: Manifest,
    call: ProxyCall,
    route: EgressRoute,
    headers: Headers,
    body: RequestBody,
    client_timeout: aiohttp.ClientTimeout,
) -> AsyncIterator[Answer]:
    """The provider's final answer to the call (open while the caller relays its body)."""
    try:
        await spend(ctx, grant, manifest)
    except BrokerError as exc:
        raise _refused(call, "rate_limit", exc) from None
    credential = await credential_of(ctx, grant, manifest)
    egress = ctx.egress
    method, headers, retried, hops = call.method, headers, False, 0
    response: aiohttp.ClientResponse | None = None
    try:
        while True:
            here = credential if route.carries_credential else NONE
            sent = to_provider(headers, credential.names)
            sent.update(here.headers)
            if body.length is not None:
                sent["Content-Length"] = str(body.length)
            try:
                response = await egress.send(
                    method,
                    route,
                    headers=sent,
                    params=here.params,
                    data=body.payload(),
                    client_timeout=client_timeout,
                )
            except EgressDenied as exc:
                raise _refused(call, "address", exc) from None
            except aiohttp.ClientError:
                if body.too_large:
                    raise _refused(
                        call,
                        "body_size",
                        PayloadTooLarge("request body is larger than the proxy's limit"),
                    ) from None
                raise ProviderError(f"{route.target.where} could not be reached") from None
            except TimeoutError:
                raise ProviderError(f"{route.target.where} did not answer in time") from None
            call.sent = body.sent
            status = response.status
            if (
                status == 401
                and grant.oauth
                and not retried
                and here is credential
                and method in IDEMPOTENT
                and body.replayable
            ):
                fresh = await _refreshed(ctx, grant, manifest, credential)
                if fresh is not None:
                    credential, retried = fresh, True
                    response.release()
                    continue
            location = response.headers.get("Location")
            if status in REDIRECTS and location and hops < MAX_REDIRECTS:
                next_method, keeps_body = _redirected(status, method)
                if not keeps_body or body.replayable:
                    try:
                        route = egress.check_redirect(
                            manifest.permissions.http, route, credential.scrubbed(location)
                        )
                    except EgressDenied as exc:
                        raise _refused(call, "redirect", exc) from None
                    response.release()
                    hops += 1
                    if not keeps_body:
                        body.drop()
                        headers = _without_content_headers(headers)
                    method = next_method
                    continue
            out = to_runtime(response.headers, credential.values)
            if "Location" in out:
                out["Location"] = credential.scrubbed(out["Location"])
            yield Answer(response, out)
            return
    finally:
        # a plain try rather than an exit stack per hop: this is every proxied call's path
        if response is not None:
            response.release()


async def _refreshed(
    ctx: Context, grant: RuntimeGrant, manifest: Manifest, used: Credential
) -> Credential | None:
    """A credential with a new token after a forced refresh, or None: the refresh failed,
    was refused (forced moments ago), or gave back the token the provider just refused."""
    try:
        fresh = await credential_of(ctx, grant, manifest, force=True)
    except BrokerError:
        return None  # the provider's 401 is the truest answer left for the runtime
    return None if fresh.values == used.values else fresh


def _redirected(status: int, method: str) -> tuple[str, bool]:
    """(the method of the next hop, whether it carries the body): 303 turns into a GET
    (HEAD stays HEAD), 301 and 302 turn a POST into a GET as every browser and client
    does, 307 and 308 keep both."""
    if status == 303 and method != "HEAD":
        return "GET", False
    if status in (301, 302) and method == "POST":
        return "GET", False
    return method, True


def _without_content_headers(headers: Headers) -> CIMultiDict[str]:
    out = CIMultiDict(headers)
    for name in CONTENT_HEADERS:
        out.popall(name, None)
    return out
