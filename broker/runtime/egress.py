"""Whether a URL is inside a manifest's `permissions.http`, decided by the broker's rules
(`broker.manifest.http_permissions`, which the SDK may not import: it lives in the server's
manifest package), so the test runtime refuses what the broker would refuse.

The rules, in short: a pattern is `scheme://host[:port]/path`, the path exact or ending in
`/*` (a prefix), the host exact or `*.` + a domain (one label stands for the `*`); a target
is parsed strictly (absolute http(s), no userinfo, no fragment, a canonical host) and its
path normalized (unreserved escapes decoded, dot segments resolved, `%2e` counted as a dot)
before it is matched. sdk/behaviour-cases.json ("http_permissions") holds this module, the
server's rules and the TypeScript SDK's copy to the same cases.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


def _host(raw: str) -> str | None:
    if not raw or "%" in raw:
        return None
    if ":" in raw:
        try:
            return ipaddress.IPv6Address(raw).compressed
        except ValueError:
            return None
    name = raw.removesuffix(".")
    try:
        name = (name if name.isascii() else name.encode("idna").decode("ascii")).lower()
    except UnicodeError:
        return None
    if _NUMERIC.match(name.split(".")[-1]):
        try:
            return ipaddress.IPv4Address(name).compressed
        except ValueError:
            return None
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def normalized_path(raw: str) -> str | None:
    """RFC 3986 6.2.2 and 5.2.4; None for malformed escapes or a dot segment behind an
    encoded slash (some servers decode the slash)."""
    if not raw.startswith("/") or raw.count("%") != len(_ESCAPE.findall(raw)):
        return None

    def unreserved(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if _UNRESERVED.fullmatch(char) else "%" + m.group(1).upper()

    segments = quote(_ESCAPE.sub(unreserved, raw), safe=PATH_SAFE).split("/")[1:]
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in ("..", "."):
            if segment == ".." and out:
                out.pop()
            if last:
                out.append("")
            continue
        plain = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment)
        if {".", ".."} & set(re.split(r"[/\\]", plain)):
            return None
        out.append(segment)
    return "/" + "/".join(out)


def parse(url: str) -> Origin | None:
    """The normalized target, or None where the broker refuses it."""
    if re.search(r"[\x00-\x20\x7f#]", url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme
    if scheme not in DEFAULT_PORTS or not url.lower().startswith(scheme + "://"):
        return None
    if "@" in parts.netloc or "\\" in parts.netloc or port == 0:
        return None
    if parts.query.count("%") != len(_ESCAPE.findall(parts.query)):
        return None
    host, path = _host(parts.hostname or ""), normalized_path(parts.path or "/")
    if host is None or path is None:
        return None
    return Origin(scheme, host, port or DEFAULT_PORTS[scheme], path)


def _matches(pattern: str, target: Origin) -> bool:
    wildcard = "://*." in pattern
    allowed = parse(pattern.replace("://*.", "://", 1).removesuffix("*"))
    if allowed is None or (allowed.scheme, allowed.port) != (target.scheme, target.port):
        return False
    if wildcard:
        label, _, domain = target.host.partition(".")
        if not label or domain != allowed.host:
            return False
    elif target.host != allowed.host:
        return False
    if pattern.endswith("/*"):
        return target.path.startswith(allowed.path)
    return target.path == allowed.path


def url_allowed(url: str, patterns: Iterable[str]) -> bool:
    target = parse(url)
    return target is not None and any(_matches(pattern, target) for pattern in patterns)
