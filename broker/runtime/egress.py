"""Whether a URL is inside a manifest's `permissions.http` patterns, as the broker's egress
proxy decides it; the test runtime refuses what the broker would refuse.

A pattern is an absolute URL: `scheme://host[:port]/path`. The scheme and port must be equal
(a missing port is the scheme's default); the host equal, or for `*.example.com` any
subdomain of it (not `example.com` itself); the path equal, where a `*` matches any run of
characters, `/` included (`https://api.stripe.com/*` is the whole API). The query is not
part of the match. The target's dot segments are resolved first (`%2e` counts as a dot), so
`/v1/../admin` is `/admin`. A target with credentials in it is never allowed.
The cases every implementation is held to are in sdk/behaviour-cases.json ("http_permissions").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(parts: SplitResult) -> tuple[str, str, int] | None:
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def resolve_dots(path: str) -> str:
    """RFC 3986 5.2.4 remove_dot_segments, with `%2e` read as the dot it stands for."""
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        dots = re.sub("%2e", ".", segment, flags=re.IGNORECASE)
        last = i == len(segments) - 1
        if dots == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        elif dots == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    resolved = "/".join(out)
    return resolved if resolved.startswith("/") else "/" + resolved


def _path_regex(path: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in path.split("*")), re.DOTALL)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def url_allowed(url: str, patterns: Iterable[str]) -> bool:
    target = urlsplit(url)
    origin = _origin(target)
    if origin is None or target.username is not None or target.password is not None:
        return False
    path = resolve_dots(target.path or "/")
    for pattern in patterns:
        # a `*` host label is not a valid URL host: parse it with a stand-in
        wild = "://*." in pattern
        parts = urlsplit(pattern.replace("://*.", "://wildcard.", 1) if wild else pattern)
        allowed = _origin(parts)
        if allowed is None:
            continue
        scheme, host, port = allowed
        if wild:
            host = "*." + host.removeprefix("wildcard.")
        if (scheme, port) != origin[::2] or not _host_matches(host, origin[1]):
            continue
        if _path_regex(parts.path or "/").fullmatch(path):
            return True
    return False
