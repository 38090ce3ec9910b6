"""`permissions.http`: the URL patterns a connector's provider calls may reach, and the
decision for one target URL (pure: no I/O; the address rules that need DNS are the egress
proxy's, `broker.services.proxy`).

A pattern is `scheme://host[:port]/path`: the scheme is https (plain http only to a loopback
host, for local test peers); the host is a name, an IP literal, or `*.` followed by a domain
of at least two labels (one label stands for the `*`: never `*` alone, never across
domains); the port defaults by scheme; the path is exact or ends in `/*` (a prefix).

A target is parsed strictly and normalized before it is matched, and the normalized form is
what is sent, so what was checked is what the provider sees: host lowercased, IDNA-encoded,
without its trailing dot; percent-encoding of unreserved characters decoded and other escapes
uppercased; dot segments (`.`, `..`, `%2e`) resolved, so `/v1/../admin` is `/admin`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from broker.errors import EgressDenied
from broker.http_rules import url_parts

DEFAULT_PORTS = {"https": 443, "http": 80}
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class HttpPattern:
    text: str
    scheme: str
    host: str
    """The host, or for a wildcard the domain the `*` label sits under."""
    wildcard: bool
    port: int
    path: str
    """The exact path, or for `prefix` the path up to and including its last `/`."""
    prefix: bool

    @property
    def explicit(self) -> bool:
        """Names one host (no wildcard): the only kind that may reach a private address."""
        return not self.wildcard

    def host_matches(self, host: str) -> bool:
        if not self.wildcard:
            return host == self.host
        label, _, rest = host.partition(".")
        return rest == self.host and bool(label)

    def path_matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


@dataclass(frozen=True)
class Target:
    """A normalized target URL: `url` is what goes on the wire."""

    scheme: str
    host: str
    port: int
    path: str
    query: str
    ip: url_parts.IPAddress | None
    """The host as an address when the URL names one (no DNS for it)."""

    @property
    def url(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.where}{self.path}{query}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @functools.cached_property
    def where(self) -> str:
        """`host`, `host:port` or `[v6]:port` as in the URL (for messages: never the path
        or the query)."""
        host = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        return host + ("" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}")


@dataclass(frozen=True)
class Allowed:
    target: Target
    pattern: HttpPattern
    """The matching pattern; an explicit one is preferred over a wildcard."""

    @property
    def explicit_host(self) -> bool:
        return self.pattern.explicit


def check(patterns: Sequence[str], url: str) -> Allowed:
    """The decision for `url`; `EgressDenied` names the rule that refused."""
    target = parse_target(url)
    hosts = [p for p in _parsed(tuple(patterns)) if p.host_matches(target.host)]
    if not hosts:
        raise EgressDenied(f"host {target.host} is not in the connector's permissions.http")
    schemes = [p for p in hosts if p.scheme == target.scheme]
    if not schemes:
        if target.scheme == "http":
            raise EgressDenied(
                f"scheme downgrade: {target.host} is allowed only over https, not http"
            )
        raise EgressDenied(f"{target.host} is allowed only over {hosts[0].scheme}")
    ports = [p for p in schemes if p.port == target.port]
    if not ports:
        allowed = ", ".join(sorted({str(p.port) for p in schemes}))
        raise EgressDenied(f"port {target.port} of {target.host} is not allowed (only {allowed})")
    paths = [p for p in ports if p.path_matches(target.path)]
    if not paths:
        allowed = ", ".join(p.path + ("*" if p.prefix else "") for p in ports)
        raise EgressDenied(f"the path is outside what {target.where} allows ({allowed})")
    return Allowed(target, min(paths, key=lambda p: p.wildcard))


@functools.lru_cache(maxsize=256)
def _parsed(patterns: tuple[str, ...]) -> tuple[HttpPattern, ...]:
    """A manifest's list, parsed once (a catalog holds few lists)."""
    return tuple(parse_pattern(p) for p in patterns)


def pattern_problem(text: str) -> str | None:
    """Why a `permissions.http` entry is not a pattern (None: it is one)."""
    try:
        parse_pattern(text)
    except ValueError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=1024)
def parse_pattern(text: str) -> HttpPattern:
    """`ValueError` says what is wrong with the pattern."""
    parts = _split(text, ValueError)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError("a pattern has no query or fragment")
    netloc = parts.netloc
    wildcard = netloc.startswith("*.")
    if "*" in netloc[2 if wildcard else 0 :]:
        raise ValueError("`*` may only stand for the first label of a host, as in *.example.com")
    hostname = parts.hostname or ""
    host, ip = url_parts.host(hostname[2:] if wildcard else hostname, ValueError)
    if wildcard and (ip is not None or host.count(".") < 1):
        raise ValueError(
            "a wildcard host needs a domain of at least two labels after `*.` "
            "(one pattern never spans domains)"
        )
    if parts.scheme == "http" and not (wildcard is False and url_parts.is_loopback(host, ip)):
        raise ValueError("must be https:// (plain http only to a loopback host)")
    port = _port(parts, ValueError)
    path = parts.path
    prefix = path.endswith("/*")
    if prefix:
        path = path[:-1]
    if "*" in path:
        raise ValueError("`*` may only end the path, after a `/` (a prefix: /v1/*)")
    if not path.startswith("/"):
        raise ValueError("needs a path, e.g. https://api.example.com/*")
    normalized = url_parts.path(path, ValueError)
    if normalized != path:
        raise ValueError(f"the path is not in normal form (it would be {normalized})")
    return HttpPattern(text, parts.scheme, host, wildcard, port, normalized, prefix)


def parse_target(url: str) -> Target:
    """A target URL, strictly: absolute http(s), no userinfo, no fragment; normalized."""
    parts = _split(url, EgressDenied)
    if parts.fragment or "#" in url:
        raise EgressDenied("the target URL has a fragment (it is never sent to a provider)")
    if parts.query and not url_parts.valid_escapes(parts.query):
        raise EgressDenied("the target URL's query has malformed percent-encoding")
    host, ip = url_parts.host(parts.hostname or "", EgressDenied)
    port = _port(parts, EgressDenied)
    path = url_parts.path(parts.path or "/", EgressDenied)
    query = quote(parts.query, safe=url_parts.QUERY_SAFE)
    return Target(parts.scheme, host, port, path, query, ip)


def _split(url: str, error: type[Exception]) -> SplitResult:
    if not isinstance(url, str) or _CONTROL.search(url):
        raise error("the URL has whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise error("the URL does not parse") from None
    if parts.scheme not in DEFAULT_PORTS or not url.lower().startswith(parts.scheme + "://"):
        raise error("must be an absolute http:// or https:// URL")
    if "@" in parts.netloc:
        raise error("userinfo (user:password@) in the URL is refused")
    bracketed = "[" in parts.netloc
    if not parts.netloc or "\\" in parts.netloc or bracketed != (":" in (parts.hostname or "")):
        raise error("the URL has no valid host")
    return parts


def _port(parts: SplitResult, error: type[Exception]) -> int:
    try:
        port = parts.port
    except ValueError:
        raise error("the port is not a number from 1 to 65535") from None
    if port == 0:
        raise error("the port is not a number from 1 to 65535")
    return port if port is not None else DEFAULT_PORTS[parts.scheme]
