"""A test runtime for connector authors: `broker.runtime` answered by fakes, calls recorded.

    with connector_test_runtime(secrets={"api_key": "sk_test_123"}) as runtime:
        customers = await sync_customers(fetch)
    assert runtime.calls == [("secret", "api_key")]

The Python counterpart of `connectorTestRuntime` in the connector guide. The fakes keep the
broker's semantics and raise the SDK's own exceptions, so a connector's error handling is
tested as it will run:

- readable names are those in `secrets` and `settings` (the broker serves both through
  `Secrets.get`), or exactly `granted` when given; any other name raises `NotGranted`, and a
  granted name without a value (or with the value None) raises `SecretNotSet`;
- every value shares one settings `version`, bumped by `runtime.secrets.set()`;
- `oauth=None` models an API-key connection: every OAuth call raises `NotOAuth`;
- a token within `min_ttl` (default: the broker's 300 s margin) of expiry is refreshed, as
  is every `OAuth.refresh()`; a refresh yields the next token queued with
  `runtime.oauth.next_refresh(...)`, else a new `<initial>-refreshed-<n>`;
- `fail_next(error)` makes the next call(s) raise `error` (a class or an instance; the
  `broker.errors` classes are mapped to the SDK's). A scripted `BrokerUnavailable` is what
  the real client raises once its retries are spent;
- `Http` calls go to `runtime.http` (`FakeHttp`: canned answers, recorded calls); with a
  `manifest` (a path or the parsed JSON) or `http` patterns, a URL outside
  `permissions.http` raises `EgressDenied`, and the manifest's `permissions.secrets` are
  the granted names unless `granted` is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from broker import errors
from broker.runtime.api import RuntimeBackend
from broker.runtime.errors import (
    BrokerRuntimeError,
    NotGranted,
    NotOAuth,
    SecretNotSet,
    error_class,
)
from broker.runtime.facade import use_client
from broker.runtime.fake_http import FakeHttp
from broker.runtime.wire import AccessToken, HttpResponse, Secret, secret_text

OAUTH_KEYS = {"access_token", "token_type", "expires_in", "expires_at", "scopes"}

ErrorSpec = type[errors.BrokerError] | errors.BrokerError


class Call(NamedTuple):
    kind: str  # "secret", "access_token", "refresh" or "http"
    arg: str | int | None  # the secret name, min_ttl in whole seconds, or "METHOD url"


def _as_error(error: ErrorSpec) -> Exception:
    if isinstance(error, Exception):
        return error
    if not issubclass(error, BrokerRuntimeError):
        error = error_class(error.code)  # connector code catches the SDK's classes
    return error(f"{error.code} (scripted by connector_test_runtime)")


@dataclass
class _Failures:
    queue: list[Exception] = field(default_factory=list)

    def add(self, error: ErrorSpec, times: int) -> None:
        self.queue.extend(_as_error(error) for _ in range(times))

    def raise_next(self) -> None:
        if self.queue:
            raise self.queue.pop(0)


class FakeSecrets:
    def __init__(self, values: Mapping[str, object | None], granted: Iterable[str] | None) -> None:
        self.values = dict(values)
        self.granted = set(self.values) if granted is None else set(granted)
        self.version = 1
        self._failures = _Failures()

    def set(self, name: str, value: object | None) -> None:
        """Change a value as `PATCH .../settings` would (None unsets it): bumps the version."""
        self.values[name] = value
        self.version += 1

    def fail_next(self, error: ErrorSpec, *, times: int = 1) -> None:
        self._failures.add(error, times)

    def read(self, name: str) -> Secret:
        self._failures.raise_next()
        if name not in self.granted:
            raise NotGranted(f"secret {name!r} is not granted to this connector")
        value = self.values.get(name)
        if value is None:
            raise SecretNotSet(f"secret {name!r} is granted but not set on this connection")
        return Secret(name, secret_text(value), self.version)


class FakeOAuth:
    def __init__(self, config: Mapping[str, Any] | None, margin: float) -> None:
        self.enabled = config is not None
        self.margin = margin
        self.refresh_count = 0
        self._failures = _Failures()
        self._queued: list[AccessToken] = []
        self._token = _token(config or {"access_token": "not-oauth"})
        self._initial = self._token.access_token

    @property
    def current(self) -> AccessToken:
        return self._token

    def set_token(self, access_token: str, **fields: Any) -> None:
        """Rotate the current token, as a refresh by another replica would."""
        self._token = _token({"scopes": list(self._token.scopes), **fields}, access_token)

    def next_refresh(self, access_token: str, **fields: Any) -> None:
        """The token the next refresh yields (in queue order)."""
        self._queued.append(_token({"scopes": list(self._token.scopes), **fields}, access_token))

    def expire(self) -> None:
        """Make the current token expired, so the next access-token call refreshes it."""
        self._token = AccessToken(
            self._token.access_token,
            self._token.token_type,
            datetime.now(UTC) - timedelta(seconds=1),
            self._token.scopes,
        )

    def fail_next(self, error: ErrorSpec, *, times: int = 1) -> None:
        self._failures.add(error, times)

    def access_token(self, min_ttl: int | None) -> AccessToken:
        self._check()
        ttl = self.margin if min_ttl is None else min_ttl
        expires_at = self._token.expires_at
        if expires_at is not None and expires_at - datetime.now(UTC) < timedelta(seconds=ttl):
            self._refresh()
        return self._token

    def refresh(self) -> AccessToken:
        self._check()
        self._refresh()
        return self._token

    def _check(self) -> None:
        if not self.enabled:
            raise NotOAuth(
                "this connection does not use OAuth (connector_test_runtime(oauth=None))"
            )
        self._failures.raise_next()

    def _refresh(self) -> None:
        self.refresh_count += 1
        if self._queued:
            self._token = self._queued.pop(0)
        else:
            self.set_token(f"{self._initial}-refreshed-{self.refresh_count}")


def _token(config: Mapping[str, Any], access_token: str | None = None) -> AccessToken:
    unknown = set(config) - OAUTH_KEYS
    if unknown:
        # a connector never sees a refresh token: the broker keeps it
        raise ValueError(f"unknown oauth keys {sorted(unknown)}; expected {sorted(OAUTH_KEYS)}")
    token = access_token or config.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("oauth needs an access_token string")
    expires_at = config.get("expires_at")
    if isinstance(expires_at, str):
        expires_at = datetime.fromisoformat(expires_at)
    elif expires_at is None and "expires_at" not in config:
        expires_in = config.get("expires_in", 3600)
        if expires_in is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    scopes = tuple(config.get("scopes", ()))
    return AccessToken(token, str(config.get("token_type", "Bearer")), expires_at, scopes)


class ConnectorTestRuntime:
    """The fakes behind `broker.runtime` while installed; also the `RuntimeBackend` itself."""

    def __init__(self, secrets: FakeSecrets, oauth: FakeOAuth, http: FakeHttp) -> None:
        self.secrets = secrets
        self.oauth = oauth
        self.http = http
        self.calls: list[Call] = []
        self._previous: RuntimeBackend | None = None
        self._installed = False

    def install(self) -> ConnectorTestRuntime:
        if self._installed:
            raise RuntimeError("this test runtime is already installed")
        self._previous = use_client(self)
        self._installed = True
        return self

    def restore(self) -> None:
        if self._installed:
            use_client(self._previous)
            self._installed = False

    def calls_of(self, kind: str) -> list[str | int | None]:
        return [call.arg for call in self.calls if call.kind == kind]

    def __enter__(self) -> ConnectorTestRuntime:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    async def __aenter__(self) -> ConnectorTestRuntime:
        return self.install()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()

    # RuntimeBackend: each call is recorded before it can fail, like a request the broker saw
    async def get_secret(self, name: str) -> Secret:
        self.calls.append(Call("secret", name))
        return self.secrets.read(name)

    async def get_access_token(self, min_ttl: int | None = None) -> AccessToken:
        self.calls.append(Call("access_token", min_ttl))
        return self.oauth.access_token(min_ttl)

    async def refresh_access_token(self) -> AccessToken:
        self.calls.append(Call("refresh", None))
        return self.oauth.refresh()

    async def proxy(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        self.calls.append(Call("http", f"{method} {url}"))
        return self.http.send(method, url, headers, body)


def connector_test_runtime(
    *,
    secrets: Mapping[str, str | None] | None = None,
    settings: Mapping[str, object] | None = None,
    oauth: Mapping[str, Any] | None = None,
    granted: Iterable[str] | None = None,
    refresh_margin: float = 300,
    manifest: str | Path | Mapping[str, Any] | None = None,
    http: Iterable[str] | None = None,
) -> ConnectorTestRuntime:
    """Fakes for `Secrets`, `OAuth` and `Http`; `install()`/`restore()` or a context manager.

    `oauth` is like `{"access_token": "...", "expires_in": 3600, "scopes": [...]}`
    (`expires_in: None` for a token that never expires, or `expires_at`). `manifest` (the
    connector's manifest.json, or its parsed JSON) gives the `permissions.http` patterns and
    the granted `permissions.secrets`; `http` and `granted` override them.
    """
    values: dict[str, object | None] = {**(settings or {}), **(secrets or {})}
    permissions = _permissions(manifest)
    if granted is None and "secrets" in permissions:
        granted = list(permissions["secrets"])
    if http is None and "http" in permissions:
        http = permissions["http"]
    patterns = None if http is None else [str(pattern) for pattern in http]
    return ConnectorTestRuntime(
        FakeSecrets(values, granted), FakeOAuth(oauth, refresh_margin), FakeHttp(patterns)
    )


def _permissions(manifest: str | Path | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if manifest is None:
        return {}
    parsed = manifest if isinstance(manifest, Mapping) else json.loads(Path(manifest).read_text())
    permissions = parsed.get("permissions", {})
    return permissions if isinstance(permissions, Mapping) else {}
