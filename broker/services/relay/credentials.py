"""What the proxy injects into a provider call: the connection's credential, placed where the
connector's manifest says (`connection.httpAuth`), or an OAuth connection's access token.

Building a `Credential` is pure: the values come from the connection record (read by
`forward`), never from the runtime. `values` lists every string that must not travel back
to the runtime (a header echoing it is dropped, `headers.to_runtime`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.errors import NotFound
from broker.manifest import HttpAuth
from broker.services.relay.headers import without_query_param


@dataclass(frozen=True)
class Credential:
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers the credential sets (replacing any the runtime sent under those names)."""
    query: tuple[str, str] | None = None
    """A query parameter it adds (name, value); the target has none of that name left
    (`scrubbed`, before the target is checked)."""
    values: tuple[str, ...] = ()
    """The secret strings in it (never returned to the runtime, never logged)."""

    def __repr__(self) -> str:
        # the dataclass's own repr would print the values: a traceback's locals, a failed
        # assertion or a stray debug line must show where the credential goes, never what
        query = None if self.query is None else self.query[0]
        return f"Credential(headers={sorted(self.headers)}, query={query!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """The header names it takes, and `Authorization` always: the runtime's own (its
        runtime token) never reaches a provider, whatever the credential's place."""
        return ("Authorization", *self.headers)

    @property
    def params(self) -> dict[str, str] | None:
        """The query parameters to add to a request."""
        return None if self.query is None else {self.query[0]: self.query[1]}

    def scrubbed(self, url: str) -> str:
        """`url` without the credential's query parameter (a target the runtime sent, a
        `Location` the provider sent)."""
        return url if self.query is None else without_query_param(url, self.query[0])


NONE = Credential()
"""No credential: a hop that left the original host, or a call refused before one was read."""


def query_name(auth: HttpAuth | None) -> Credential:
    """A credential with no value that scrubs the query parameter `auth` takes, if any: for
    the target, before the credential itself is read."""
    return Credential(query=(auth.name, "")) if auth is not None and auth.type == "query" else NONE


def bearer(token: str) -> Credential:
    return Credential(headers={"Authorization": f"Bearer {token}"}, values=(token,))


def _setting(settings: Mapping[str, Any], secrets: Mapping[str, str], name: str | None) -> str:
    if name is None:
        return ""
    value = secrets.get(name, settings.get(name))
    if value is None:
        raise NotFound(f"the setting {name!r} that connection.httpAuth names is not set")
    return value if isinstance(value, str) else json.dumps(value)


def from_settings(
    auth: HttpAuth, settings: Mapping[str, Any], secrets: Mapping[str, str]
) -> Credential:
    """The credential of an API-key connection: its `settings` and `secrets` placed as
    `auth` declares. A basic username from a non-secret setting is not a secret value (a
    header quoting it may go back to the runtime); the encoded pair always is."""
    if auth.type == "basic":
        user = _setting(settings, secrets, auth.username)
        password = _setting(settings, secrets, auth.password)
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        hidden = [encoded] + [
            value
            for name, value in ((auth.username, user), (auth.password, password))
            if value and name in secrets
        ]
        return Credential(headers={"Authorization": f"Basic {encoded}"}, values=tuple(hidden))
    secret = _setting(settings, secrets, auth.secret)
    if auth.type == "bearer":
        return bearer(secret)
    if auth.type == "header":
        return Credential(headers={auth.name: secret}, values=(secret,))
    return Credential(query=(auth.name, secret), values=(secret,))
