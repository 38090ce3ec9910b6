"""`Http`: provider calls through the broker's egress proxy (`/v1/runtime/proxy`).

    res = await Http.get("https://api.stripe.com/v1/customers?limit=100")
    if res.ok: customers = res.body["data"]

The guide's `Http.get(url, { auth: { bearer: apiKey } })` without the credential: the broker
injects the connection's key or access token, so the connector never holds it. A provider's
answer comes back as an `HttpResponse` whatever its status (a 404 or a 500 is the provider
talking); only the broker's own refusals raise: `EgressDenied` for a URL outside the
manifest's `permissions.http`, `RateLimited`, `PayloadTooLarge`, `Unauthorized`, ...
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from typing import Protocol, TypedDict, Unpack
from urllib.parse import urlencode, urlsplit

from broker.runtime.wire import HttpResponse

_UNSET = object()

# headers the connector cannot set: the broker's own (the runtime token travels in
# Authorization, the target in Broker-Target) and the ones that describe one hop
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "broker-target",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
    }
)


class HttpOptions(TypedDict, total=False):
    headers: Mapping[str, str]
    params: Mapping[str, str]  # added to the URL's query
    json: object  # sent as JSON (with Content-Type: application/json unless given)
    data: bytes | str  # sent as is


class HttpBackend(Protocol):
    async def proxy(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse: ...


def target_url(url: str, params: Mapping[str, str] | None) -> str:
    """The absolute http(s) URL the proxy is asked for; a malformed one is a connector bug."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("Http needs an absolute http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("Http URLs must not carry credentials: the broker injects them")
    if params:
        url += ("&" if parts.query else "?") + urlencode(params)
    return url


def request_parts(
    headers: Mapping[str, str] | None, json: object, data: bytes | str | None
) -> tuple[dict[str, str], bytes | None]:
    sent = dict(headers or {})
    refused = sorted(name for name in sent if name.lower() in RESERVED_HEADERS)
    if refused:
        raise ValueError(
            f"Http cannot send {', '.join(refused)}: the broker sets it (and injects the "
            "credential)"
        )
    if json is not _UNSET:
        if data is not None:
            raise ValueError("pass json or data, not both")
        if not any(name.lower() == "content-type" for name in sent):
            sent["Content-Type"] = "application/json"
        return sent, jsonlib.dumps(json).encode()
    return sent, data.encode() if isinstance(data, str) else data


class HttpAPI:
    def __init__(self, backend: Callable[[], HttpBackend]) -> None:
        self._backend = backend

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: object = _UNSET,
        data: bytes | str | None = None,
    ) -> HttpResponse:
        if not method.isalpha():
            raise ValueError("an HTTP method is letters only")
        sent, body = request_parts(headers, json, data)
        return await self._backend().proxy(method.upper(), target_url(url, params), sent, body)

    async def get(self, url: str, **options: Unpack[HttpOptions]) -> HttpResponse:
        return await self.request("GET", url, **options)

    async def post(self, url: str, **options: Unpack[HttpOptions]) -> HttpResponse:
        return await self.request("POST", url, **options)

    async def put(self, url: str, **options: Unpack[HttpOptions]) -> HttpResponse:
        return await self.request("PUT", url, **options)

    async def patch(self, url: str, **options: Unpack[HttpOptions]) -> HttpResponse:
        return await self.request("PATCH", url, **options)

    async def delete(self, url: str, **options: Unpack[HttpOptions]) -> HttpResponse:
        return await self.request("DELETE", url, **options)
