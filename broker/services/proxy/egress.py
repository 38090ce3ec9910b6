"""`Egress`: where a provider call through the proxy may go, and the connection it goes over.

`check` decides a target against the connector's `permissions.http` (and an IP literal
against the address rules, no DNS); `request` sends one request along a checked route,
never following a redirect itself; `check_redirect` decides each hop of a redirect chain
the caller follows. Name resolution is checked at connect time (`resolver.CheckedResolver`).

Two client sessions, because aiohttp pools keep-alive connections by host and port and a
pooled connection is reused without resolving again: connections for routes whose pattern
names the host explicitly (which may reach a private address) live in one pool, all others
in another, so a connection made for an explicit route is never reused by a wildcard route
that would have been refused for the same address.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

import aiohttp
import yarl

from broker.errors import EgressDenied
from broker.http_rules import permissions as http_permissions
from broker.http_rules.permissions import Allowed, Target
from broker.services.proxy.addresses import refusal
from broker.services.proxy.resolver import AddressRefused, CheckedResolver, system_or


@dataclass(frozen=True)
class EgressRoute:
    """A checked target: the URL to send (normalized, as checked) and how it was allowed."""

    allowed: Allowed
    carries_credential: bool = True
    """False once a redirect left the origin the credential was meant for: the caller sends
    no credential on this hop (nor on any later one)."""

    @property
    def target(self) -> Target:
        return self.allowed.target

    @functools.cached_property
    def url(self) -> yarl.URL:
        return yarl.URL(self.target.url, encoded=True)

    @property
    def pattern(self) -> str:
        """The permissions.http pattern that allowed it."""
        return self.allowed.pattern.text

    @property
    def explicit_host(self) -> bool:
        return self.allowed.explicit_host

    def same_origin_as(self, other: EgressRoute) -> bool:
        return self.target.origin == other.target.origin


CACHED_URL_LENGTH = 1024
"""Targets up to this long are remembered (`_checked_cached`): 2,048 of them, under 8 MB
whatever the runtimes send."""


def _checked(patterns: tuple[str, ...], url: str) -> EgressRoute:
    allowed = http_permissions.check(patterns, url)
    ip = allowed.target.ip
    if ip is not None:
        kind = refusal(ip, explicit_host=allowed.explicit_host)
        if kind is not None:
            named = "" if allowed.explicit_host else ", and permissions.http does not name it"
            raise EgressDenied(f"{allowed.target.host} is a {kind.value} address{named}")
    return EgressRoute(allowed)


_checked_cached = functools.lru_cache(maxsize=2048)(_checked)
"""The same decision, remembered by (pattern list, target): it is a pure function of the
two (no DNS: a name's addresses are checked at connect time, `resolver`), and the route is
immutable, so a call repeating a target gets the very route the first one got, its URL
already parsed (aiohttp then reuses the URL's own cached parts). A refusal raises and is
never remembered: it is decided anew each time."""


class Egress:
    """Created unstarted (cheap); `start` opens the two pools inside the running loop."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._nameservers = tuple(nameservers)
        self._connect_timeout = connect_timeout
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        """Certificates are verified always; a context only changes whom they are trusted
        from (tests: their own CA)."""
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    async def start(self) -> None:
        for explicit in (False, True):
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(system_or(self._nameservers), explicit_hosts=explicit),
                use_dns_cache=False,
                ssl=self._ssl,
            )
            self._sessions[explicit] = aiohttp.ClientSession(
                connector=connector,
                # a proxy forwards bodies as the provider sent them (Content-Encoding intact)
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    def check(self, patterns: Sequence[str], url: str | yarl.URL) -> EgressRoute:
        """The route to `url`, or `EgressDenied` naming the rule that refused."""
        text = str(url)
        if len(text) > CACHED_URL_LENGTH:
            return _checked(tuple(patterns), text)
        return _checked_cached(tuple(patterns), text)

    def check_redirect(
        self, patterns: Sequence[str], current: EgressRoute, location: str
    ) -> EgressRoute:
        """The next hop of a redirect from `current` to `location` (relative or absolute),
        held to the same list; it carries the credential only while the origin is the same."""
        absolute = urljoin(current.target.url, location.partition("#")[0])
        try:
            route = self.check(patterns, absolute)
        except EgressDenied as exc:
            raise EgressDenied(f"redirect refused: {exc}") from None
        same = current.carries_credential and route.same_origin_as(current)
        return replace(route, carries_credential=same)

    @contextlib.asynccontextmanager
    async def request(
        self, method: str, route: EgressRoute, **options: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """`send` (the same `options`), the answer released on leaving the block."""
        response = await self.send(method, route, **options)
        try:
            yield response
        finally:
            response.release()

    async def send(
        self,
        method: str,
        route: EgressRoute,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """One request along `route` (`params` are added to its query: a query credential);
        a 3xx comes back as it is. A connection the address rules refuse raises
        `EgressDenied`; other connection failures are aiohttp's `ClientError`s. The caller
        releases the answer (`request` does it for a block)."""
        if not self._sessions:
            raise RuntimeError("the Egress is not started (or was closed)")
        session = self._sessions[route.explicit_host]
        options: dict[str, Any] = {} if client_timeout is None else {"timeout": client_timeout}
        try:
            return await session.request(
                method,
                route.url,
                headers=headers,
                params=params,
                data=data,
                allow_redirects=False,
                **options,
            )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise exc.os_error.denied from None
            raise
