"""The runtime token on the egress proxy's paths, where a provider's own SDK sends its key.

An SDK pointed at the broker (its base URL the path form, its API key the runtime token)
sends that key the way its provider expects, which is where the connector's
`connection.httpAuth` puts the real credential: `Authorization: Bearer` (Stripe), HTTP
Basic (Twilio, Mailchimp), a header of its own (`X-Postmark-Server-Token`, `api-key`) or a
query parameter. So on the proxy's paths, and only there, the token is accepted:

- in `Authorization: Bearer <token>`, whatever the connector (as on every runtime route);
- in `Authorization: Basic`, as the password where httpAuth names a password setting,
  else as the username (the key-as-username providers); the other part is ignored: the
  broker sends the stored one;
- in the header a `header` httpAuth names;
- in the query parameter a `query` httpAuth names: the proxy URL's query in the path
  form, the query of the `Broker-Target` URL in the header form.

The guard runs before the handler knows the connector, and the token names it once
verified: so the candidates are collected first (cheaply: Authorization, and any other
header or query value starting with `brt1.`), the one candidate is verified, then its place
is held against the verified connector's httpAuth (`check_place`). More than one candidate
is refused: a second copy would travel on to the provider. Every place a token is accepted
in is one the relay strips or replaces before forwarding (`Authorization` always, the
credential's header name, the credential's query parameter), so the token never reaches a
provider. Messages never quote a value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from broker.crypto.runtime_tokens import PREFIX, RuntimeGrant
from broker.errors import Unauthorized
from broker.manifest import HttpAuth

MARK = PREFIX + "."
"""How every runtime token starts: what marks a header or query value as a candidate."""
TARGET_HEADER = "Broker-Target"


@dataclass(frozen=True)
class Place:
    """Where a candidate token was found: `bearer`, `basic` (`part`: username or
    password), `header` or `query` (`name`: the header or parameter)."""

    kind: str
    name: str = ""


BEARER = Place("bearer")


def _basic_parts(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials")
    return user, password


def _from_authorization(header: str, found: list[tuple[Place, str]]) -> None:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        found.append((BEARER, value.strip()))
    elif scheme == "basic":
        user, password = _basic_parts(value)
        for part, token in (("username", user), ("password", password)):
            if token.startswith(MARK):
                found.append((Place("basic", part), token))


def _from_query(pairs: Iterable[tuple[str, str]], found: list[tuple[Place, str]]) -> None:
    for name, value in pairs:
        if value.startswith(MARK):
            found.append((Place("query", name), value))


def candidate(request: web.Request, *, target_header: bool) -> tuple[Place, str]:
    """The one runtime token the request carries and where, or `Unauthorized`.
    `target_header`: the header form, whose query is in the `Broker-Target` URL."""
    found: list[tuple[Place, str]] = []
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered == "authorization":
            _from_authorization(value, found)
        elif value.startswith(MARK):
            found.append((Place("header", lowered), value))
    if target_header:
        target = request.headers.get(TARGET_HEADER, "")
        if PREFIX in target:
            _from_query(parse_qsl(urlsplit(target).query, keep_blank_values=True), found)
    elif PREFIX in request.query_string:
        _from_query(request.query.items(), found)
    if not found:
        raise Unauthorized("missing runtime token")
    if len(found) > 1:
        raise Unauthorized("the runtime token must be sent in one place only")
    return found[0]


def check_place(place: Place, grant: RuntimeGrant, auth: HttpAuth | None) -> None:
    """`Unauthorized` unless `place` is where the verified grant's connector takes its key:
    Bearer anywhere; otherwise where `auth` (its `connection.httpAuth`) puts the secret.
    An OAuth connection's key is a bearer token, whatever else its manifest says."""
    if place == BEARER:
        return
    if auth is not None and not grant.oauth and place == expected_place(auth):
        return
    raise Unauthorized("the runtime token is not where this connector's credential goes")


def expected_place(auth: HttpAuth) -> Place:
    """Where an SDK of the provider puts its key, by `auth`: for Basic, the password when
    `auth` names one, else the username."""
    if auth.type == "basic":
        return Place("basic", "password" if auth.password is not None else "username")
    if auth.type == "header":
        return Place("header", auth.name.lower())
    if auth.type == "query":
        return Place("query", auth.name)
    return BEARER
