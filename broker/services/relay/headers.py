"""What crosses the proxy in each direction: the runtime's headers on their way to the
provider, the provider's on their way back.

Hop-by-hop headers (RFC 9110 7.6.1, and every name the `Connection` header lists) belong to
one connection and never cross. Towards the provider the runtime's own credentials stop here:
its `Authorization` (the runtime token), the header or query parameter the connector's
credential goes in (the broker sets those), `Broker-Target`, `Host` (set from the target)
and `Cookie`. Back from the provider `Set-Cookie` and `Broker-Error` (the broker's own mark
on its refusals, which the runtime SDKs go by) stop, and so does any header whose value
carries the injected credential (a provider echoing it in a debug header or a `Location`).

Cookies both ways, because the proxy keeps no session: a provider's cookie is a session
credential that a runtime would then hold and replay outside the broker's control, and one
runtime's cookie must never ride on another's call.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
TARGET_HEADER = "Broker-Target"
NOT_FORWARDED = HOP_BY_HOP | {
    "authorization",
    "broker-target",
    "host",
    "cookie",
    "content-length",  # set from the body actually sent
    "expect",  # 100-continue was the broker's to answer
}
# Broker-Error marks the broker's own refusals (request_guard): a provider may not forge one
NOT_RETURNED = HOP_BY_HOP | {"set-cookie", "content-length", "broker-error"}

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


def _listed_in_connection(headers: Headers) -> set[str]:
    return {
        name.strip().lower()
        for value in headers.getall("Connection", ())
        for name in value.split(",")
        if name.strip()
    }


def _dropped(always: frozenset[str], headers: Headers) -> frozenset[str]:
    """`always` and the names `Connection` lists: most calls have no `Connection` header,
    and then it is `always` itself, no set built per call."""
    return always | _listed_in_connection(headers) if "Connection" in headers else always


@functools.lru_cache(maxsize=256)
def _not_forwarded(credential_headers: tuple[str, ...]) -> frozenset[str]:
    """`NOT_FORWARDED` and a credential's header names, once per set of names (a manifest
    declares one)."""
    return NOT_FORWARDED | {name.lower() for name in credential_headers}


def to_provider(headers: Headers, credential_headers: Iterable[str]) -> CIMultiDict[str]:
    """The runtime's headers as the provider gets them, before the credential is added:
    nothing hop-by-hop, nothing of the runtime's own authentication, and none of the names
    the credential is about to take (`credential_headers`), so a runtime cannot supply or
    double them. No `Accept-Encoding` becomes `identity`: the body is relayed as the
    provider encodes it, so it must not encode what the runtime did not ask for."""
    dropped = _dropped(_not_forwarded(tuple(credential_headers)), headers)
    out = CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in dropped])
    if "Accept-Encoding" not in out:
        out["Accept-Encoding"] = "identity"
    return out


def to_runtime(headers: Headers, secrets: Iterable[str]) -> CIMultiDict[str]:
    """The provider's headers as the runtime gets them: nothing hop-by-hop, no cookie, and
    no header that quotes a credential value."""
    dropped = _dropped(NOT_RETURNED, headers)
    values = [s for s in secrets if s]
    return CIMultiDict(
        [
            (k, v)
            for k, v in headers.items()
            if k.lower() not in dropped and not any(s in v for s in values)
        ]
    )


def without_query_param(url: str, name: str) -> str:
    """`url` without any `name=` parameter (the one a query credential takes)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    if len(kept) == len(parse_qsl(parts.query, keep_blank_values=True)):
        return url  # untouched: keep its exact encoding
    return urlunsplit(parts._replace(query=urlencode(kept)))


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The body's declared `Content-Length`, or None (chunked, or absent)."""
    raw = headers.get("Content-Length")
    return int(raw) if raw is not None and raw.isdigit() else None
