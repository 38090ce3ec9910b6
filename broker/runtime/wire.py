"""What the runtime API answers (`Secret`, `AccessToken`, a proxied `HttpResponse`) and how
the SDK reads its JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.runtime.errors import BrokerRuntimeError


@dataclass(frozen=True)
class Secret:
    name: str
    value: str = field(repr=False)
    version: int  # of the connection's settings: it increases on every change


@dataclass(frozen=True)
class AccessToken:
    access_token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None  # None: the provider issued a token that does not expire
    scopes: tuple[str, ...] = ()


def secret_text(value: object) -> str:
    # non-secret settings may be numbers, booleans or objects; JSON keeps them lossless
    return value if isinstance(value, str) else json.dumps(value)


def bad_answer(what: str) -> BrokerRuntimeError:
    # never quote the body: a half-valid answer may still hold the secret
    return BrokerRuntimeError(f"malformed broker answer to {what}", code="bad_response")


def parse_secret(body: object, name: str) -> Secret:
    if not isinstance(body, dict) or "value" not in body:
        raise bad_answer(f"secret {name!r}")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad_answer(f"secret {name!r}")
    return Secret(name=name, value=secret_text(body["value"]), version=version)


def parse_access_token(body: object) -> AccessToken:
    if not isinstance(body, dict):
        raise bad_answer("an access-token request")
    token, token_type = body.get("access_token"), body.get("token_type", "Bearer")
    expires, scopes = body.get("expires_at"), body.get("scopes", [])
    if not (isinstance(token, str) and token and isinstance(token_type, str)):
        raise bad_answer("an access-token request")
    if not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise bad_answer("an access-token request")
    expires_at = None
    if expires is not None:
        try:
            expires_at = datetime.fromisoformat(str(expires))
        except ValueError:
            raise bad_answer("an access-token request") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
    return AccessToken(token, token_type, expires_at, tuple(scopes))


@dataclass(frozen=True)
class HttpResponse:
    """A provider's answer through the egress proxy, whatever its status (the guide's `res`)."""

    status: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def body(self) -> Any:
        """The parsed JSON when the provider says it sent JSON, else the text."""
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json"):
            try:
                return self.json()
            except ValueError:
                return self.text
        return self.text
