"""The parts of an egress URL, each parsed and normalized strictly (for
`broker.http_rules.permissions`): one spelling per host and path, so a match on the
normalized form holds for what the provider receives.

Each function takes the exception class to raise: a manifest pattern is refused with
`ValueError` (a manifest problem), a target URL with `EgressDenied` (a 403 to the runtime).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import quote

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 3986: pchar without "%" (escapes are checked separately), and "/" between segments
PATH_SAFE = "/:@!$&'()*+,;=-._~"
QUERY_SAFE = PATH_SAFE + "?%"
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# WHATWG URL: a host whose last label is numeric is an IPv4 address (127.1, 0x7f.1,
# 2130706433 all mean 127.0.0.1 to some resolver); only the canonical dotted quad is taken
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# a path already in normal form: safe characters only, no escape to decode or uppercase
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@]*)+")


@functools.lru_cache(maxsize=1024)
def host(raw: str, error: type[Exception]) -> tuple[str, IPAddress | None]:
    """(normalized host, address if it is an IP literal). Cached: a broker calls few hosts,
    and IDNA and `ipaddress` parsing are most of a target's check (the result is immutable;
    a refusal raises, and is never cached)."""
    if not raw or "%" in raw:
        raise error("the URL has no valid host")
    if ":" in raw:  # urlsplit took it out of [brackets]: IPv6
        try:
            v6 = ipaddress.IPv6Address(raw)
        except ValueError:
            raise error("the host is not a valid IPv6 address") from None
        return v6.compressed, v6
    name = raw[:-1] if raw.endswith(".") else raw
    try:
        name = name if name.isascii() else idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise error("the host is not a valid domain name") from None
    name = name.lower()
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            v4 = ipaddress.IPv4Address(name)
        except ValueError:
            raise error("the host is not a canonical IPv4 address (a.b.c.d)") from None
        return v4.compressed, v4
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise error("the host is not a valid domain name")
    return name, None


def is_loopback(name: str, ip: IPAddress | None) -> bool:
    return name == "localhost" or (ip is not None and ip.is_loopback)


def valid_escapes(text: str) -> bool:
    return text.count("%") == len(_ESCAPE.findall(text))


def path(raw: str, error: type[Exception]) -> str:
    """RFC 3986 normalization (6.2.2): unreserved escapes decoded, other escapes uppercased,
    dot segments removed; characters that must be escaped are. A dot segment hidden behind
    an encoded slash (`%2F..%2F`) is refused: some servers decode the slash."""
    if _PLAIN_PATH.fullmatch(raw):
        segments = raw.split("/")
        if "." not in segments and ".." not in segments:
            return raw  # the common case, and what the steps below would give back
    if not raw.startswith("/"):
        raise error("the path must start with /")
    if not valid_escapes(raw):
        raise error("the path has malformed percent-encoding")
    decoded = _ESCAPE.sub(_decode_unreserved, raw)
    encoded = quote_path(decoded)
    segments = _remove_dot_segments(encoded.split("/")[1:])
    for segment in segments:
        plain = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment)
        if {".", ".."} & set(re.split(r"[/\\]", plain)) and plain not in (".", ".."):
            raise error("the path hides a dot segment behind an encoded slash")
    return "/" + "/".join(segments)


def quote_path(text: str) -> str:
    # "%" is kept: the escapes were validated before
    return quote(text, safe=PATH_SAFE + "%")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if _UNRESERVED.fullmatch(char) else "%" + match.group(1).upper()


def _remove_dot_segments(segments: list[str]) -> list[str]:
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return out
