"""Request rate limits: per client address on the routes a browser opens (the Connect pages
and the OAuth callback: anyone on the internet can reach them), per runtime token on
/v1/runtime/*. Over the limit: 429 `rate_limited` with `Retry-After` (whole seconds, rounded
up), nothing done.

The buckets are token buckets in the store (`Store.rate_limit`), so a limit holds across
every replica sharing it (Redis), not per process. That costs a store round trip per
limited request, which is why the runtime limit is off unless configured: a runtime read is
otherwise answered from the record cache without one.

Which limit a route gets is decided once, when the app is built (`for_route`): a route
without one pays nothing per request. If the store cannot be reached, the request goes on
unlimited: it needs the store itself and fails on its own, or is served from the cache,
which the limit is not there to prevent.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from broker.config import Settings
from broker.errors import RateLimited, StoreUnavailable
from broker.store import keys
from broker.web.state import GRANT, STORE

Limit = Callable[[web.Request], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
BROWSER_PREFIXES = ("/connect/", "/oauth/callback/")
RUNTIME_PREFIX = "/v1/runtime/"


def for_route(path: str, settings: Settings) -> Limit | None:
    """The limit of the route registered at `path` (a template), None for none."""
    if path.startswith(BROWSER_PREFIXES) and settings.connect_rate_limit:
        return _per_address(settings)
    if path.startswith(RUNTIME_PREFIX) and settings.runtime_rate_limit:
        return _per_runtime_token(settings)
    return None


def _per_address(settings: Settings) -> Limit:
    rate, burst = settings.connect_rate_limit, settings.connect_rate_burst
    trusted = tuple(settings.trusted_proxies)

    async def limit(request: web.Request) -> None:
        address = client_address(request, trusted)
        # an address as a key part: `:` of IPv6 is fine inside the hash tag, braces never occur
        key = keys.rate_bucket(f"rate_connect_{address}", "connect")
        await _take(request, key, rate, burst, "from this address")

    return limit


def _per_runtime_token(settings: Settings) -> Limit:
    rate, burst = settings.runtime_rate_limit, settings.runtime_rate_burst

    async def limit(request: web.Request) -> None:
        grant = request[GRANT]  # the request guard verified the token before this runs
        key = keys.rate_bucket(grant.connection_id, f"runtime:{grant.token_id}")
        await _take(request, key, rate, burst, "with this runtime token")

    return limit


async def _take(request: web.Request, key: str, rate: float, burst: int, whose: str) -> None:
    try:
        wait = await request.app[STORE].rate_limit(key, rate, burst)
    except StoreUnavailable:
        return  # see the module docstring
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(f"too many requests {whose}; retry in {seconds} s", seconds)


def client_address(request: web.BaseRequest, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, or, where the peer is a trusted proxy, the last
    address in `X-Forwarded-For` that is not a trusted proxy (each proxy appends the address
    it was reached from, so the entries left of the last untrusted one are the client's to
    make up). An entry that is not an IP address ends the walk at the hop before it."""
    peer = _ip(request.remote)
    if peer is None:
        return "unknown"
    hop = peer
    if _trusted(hop, trusted):
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
        for entry in reversed(forwarded.split(",")):
            found = _ip(entry.strip())
            if found is None:
                break
            hop = found
            if not _trusted(hop, trusted):
                break
    return str(hop)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
