"""The SDK connector code uses to read its credentials from the broker.

    await Secrets.get("api_key")          -> str
    await OAuth.access_token(min_ttl=60)  -> str   (alias: OAuth.accessToken)
    await OAuth.refresh()                 -> AccessToken   (the provider answered 401)

Configured from `BROKER_URL` and `BROKER_RUNTIME_TOKEN`; the module-level `Secrets` and
`OAuth` share one lazily created `BrokerClient`, closed by `await broker.runtime.aclose()`.
`use_client()` swaps the backend (`broker.testing` installs fakes through it).

Every failure is a `BrokerRuntimeError`, which is also a `broker.errors.BrokerError`
carrying the wire `code` and HTTP `status`:

    BrokerRuntimeError                  any other refusal or a malformed answer
    ├── NotConfigured                   BROKER_URL / BROKER_RUNTIME_TOKEN missing or invalid
    ├── Unauthorized                    401 unauthorized: runtime token bad, expired, revoked
    ├── NotGranted                      403 not_granted: the manifest does not grant the name
    ├── NotFound                        404 not_found
    │   └── SecretNotSet                granted, but this connection has no value for it
    ├── NeedsReauth                     409 needs_reauth: a human must reconnect the account
    ├── NotOAuth                        400 not_oauth: an OAuth call on an API-key connection
    ├── ProviderError                   502 provider_error: refresh failed, no valid token left
    └── BrokerUnavailable               503, a proxy's 502/504, network errors, timeouts

Only `BrokerUnavailable` is retried (exponential backoff with full jitter, bounded in count
and in total time); a 4xx is an answer, and asking again would not change it. No message,
repr or log line ever holds a secret value or the runtime token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlsplit

import aiohttp

from broker import errors

logger = logging.getLogger(__name__)

URL_ENV = "BROKER_URL"
TOKEN_ENV = "BROKER_RUNTIME_TOKEN"


class BrokerRuntimeError(errors.BrokerError):
    def __init__(
        self, message: str = "", *, status: int | None = None, code: str | None = None
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        super().__init__(message or self.code)


class NotConfigured(BrokerRuntimeError, errors.ConfigError):
    pass


class Unauthorized(BrokerRuntimeError, errors.Unauthorized):
    pass


class NotGranted(BrokerRuntimeError, errors.NotGranted):
    pass


class NotFound(BrokerRuntimeError, errors.NotFound):
    pass


class SecretNotSet(NotFound):
    pass


class NeedsReauth(BrokerRuntimeError, errors.NeedsReauth):
    pass


class NotOAuth(BrokerRuntimeError, errors.NotOAuth):
    pass


class ProviderError(BrokerRuntimeError, errors.ProviderError):
    pass


class BrokerUnavailable(BrokerRuntimeError):
    code = "broker_unavailable"
    status = 503


_BY_CODE: dict[str, type[BrokerRuntimeError]] = {
    cls.code: cls
    for cls in (Unauthorized, NotGranted, NotFound, NeedsReauth, NotOAuth, ProviderError)
}
_BY_CODE["store_unavailable"] = BrokerUnavailable


def error_class(code: str) -> type[BrokerRuntimeError]:
    """The SDK exception for a wire error code (the test runtime maps `broker.errors` too)."""
    return _BY_CODE.get(code, BrokerRuntimeError)


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


class RuntimeBackend(Protocol):
    """What `Secrets` and `OAuth` call: a `BrokerClient`, or a fake from broker.testing."""

    async def get_secret(self, name: str) -> Secret: ...

    async def get_access_token(self, min_ttl: int | None = None) -> AccessToken: ...

    async def refresh_access_token(self) -> AccessToken: ...


def secret_text(value: object) -> str:
    # non-secret settings may be numbers, booleans or objects; JSON keeps them lossless
    return value if isinstance(value, str) else json.dumps(value)


def _bad_answer(what: str) -> BrokerRuntimeError:
    # never quote the body: a half-valid answer may still hold the secret
    return BrokerRuntimeError(f"malformed broker answer to {what}", code="bad_response")


def parse_secret(body: object, name: str) -> Secret:
    if not isinstance(body, dict) or "value" not in body:
        raise _bad_answer(f"secret {name!r}")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad_answer(f"secret {name!r}")
    return Secret(name=name, value=secret_text(body["value"]), version=version)


def parse_access_token(body: object) -> AccessToken:
    if not isinstance(body, dict):
        raise _bad_answer("an access-token request")
    token, token_type = body.get("access_token"), body.get("token_type", "Bearer")
    expires, scopes = body.get("expires_at"), body.get("scopes", [])
    if not (isinstance(token, str) and token and isinstance(token_type, str)):
        raise _bad_answer("an access-token request")
    if not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise _bad_answer("an access-token request")
    expires_at = None
    if expires is not None:
        try:
            expires_at = datetime.fromisoformat(str(expires))
        except ValueError:
            raise _bad_answer("an access-token request") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
    return AccessToken(token, token_type, expires_at, tuple(scopes))


def min_ttl_seconds(min_ttl: float | timedelta | None) -> int | None:
    if min_ttl is None:
        return None
    seconds = min_ttl.total_seconds() if isinstance(min_ttl, timedelta) else float(min_ttl)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("min_ttl must be a finite number of seconds >= 0")
    return math.ceil(seconds)


class BrokerClient:
    """The runtime API over HTTP: one aiohttp session, bounded timeouts, retries on 503.

    `request_timeout` must stay above the broker's refresh-waiter deadline (10 s), or a
    caller waiting on another replica's refresh would give up before the broker does.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        retries: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        request_timeout: float = 15.0,
        connect_timeout: float = 5.0,
        total_timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        url = url if url is not None else os.environ.get(URL_ENV, "")
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        if not url:
            raise NotConfigured(
                f"{URL_ENV} is not set: the broker's base URL, e.g. http://broker:8080"
            )
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise NotConfigured(f"{URL_ENV} has an invalid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotConfigured(f"{URL_ENV} must be an http(s) URL with a host")
        if parts.username or parts.password:
            # the runtime token is the credential; the value is not quoted, it may hold one
            raise NotConfigured(f"{URL_ENV} must not carry credentials")
        if not token:
            raise NotConfigured(f"{TOKEN_ENV} is not set: the runtime token minted for this run")
        self._base = url.rstrip("/")
        self._token = token
        self._retries, self._backoff, self._max_backoff = retries, backoff, max_backoff
        self._request_timeout, self._connect_timeout = request_timeout, connect_timeout
        self._total_timeout = total_timeout
        self._external = session
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # the same facades as the module-level ones, bound to this client
        self.secrets = _SecretsAPI(lambda: self)
        self.oauth = _OAuthAPI(lambda: self)

    def __repr__(self) -> str:
        return f"BrokerClient(url={self._base!r})"

    async def __aenter__(self) -> BrokerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # -- the runtime API -------------------------------------------------------------------

    async def get_secret(self, name: str) -> Secret:
        if not name:
            raise ValueError("a secret name is required")
        path = f"/v1/runtime/secrets/{quote(name, safe='')}"
        body = await self._call("GET", path, not_found=SecretNotSet)
        return parse_secret(body, name)

    async def get_access_token(self, min_ttl: int | None = None) -> AccessToken:
        params = {} if min_ttl is None else {"min_ttl": str(min_ttl)}
        return parse_access_token(
            await self._call("GET", "/v1/runtime/oauth/access-token", params=params)
        )

    async def refresh_access_token(self) -> AccessToken:
        return parse_access_token(await self._call("POST", "/v1/runtime/oauth/refresh"))

    # -- HTTP --------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._external is not None:
            return self._external
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # a session is bound to its event loop; a client reused under a new
            # asyncio.run() starts a new one (the old loop is gone, nothing to close)
            if self._session is not None and self._loop is not None and self._loop.is_closed():
                self._session.detach()
            self._session = aiohttp.ClientSession()
            self._loop = loop
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        not_found: type[BrokerRuntimeError] = NotFound,
    ) -> object:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total_timeout
        what = f"{method} {path}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            remaining = max(deadline - loop.time(), 0.001)
            timeout = aiohttp.ClientTimeout(
                total=min(self._request_timeout, remaining), sock_connect=self._connect_timeout
            )
            retry_after = None
            try:
                async with self._http().request(
                    method, self._base + path, params=params, headers=headers, timeout=timeout
                ) as resp:
                    status, raw = resp.status, await resp.read()
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                cause: BaseException | None = exc
                reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                failure: BrokerRuntimeError = BrokerUnavailable(f"{what}: {reason}")
            else:
                if 200 <= status < 300:
                    try:
                        return json.loads(raw)
                    except ValueError:
                        raise _bad_answer(what) from None
                cause, failure = None, self._error(status, raw, what, not_found)
            if not isinstance(failure, BrokerUnavailable):
                raise failure
            delay = self._delay(attempt, retry_after)
            if attempt > self._retries or loop.time() + delay >= deadline:
                raise BrokerUnavailable(
                    f"broker unavailable after {attempt} attempts; last: {failure}",
                    status=failure.status,
                    code=failure.code,
                ) from cause
            logger.info(
                "broker runtime: %s unavailable (%s), retry %d in %.2fs",
                what,
                failure.code,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        # full jitter: replicas that failed together do not come back together
        delay = random.uniform(0, min(self._max_backoff, self._backoff * 2 ** (attempt - 1)))
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        return delay

    def _error(
        self, status: int, raw: bytes, what: str, not_found: type[BrokerRuntimeError]
    ) -> BrokerRuntimeError:
        code, message = "", ""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            code, message = str(body.get("error") or ""), str(body.get("message") or "")
        # the broker never sends credentials back, but do not trust a proxy to agree
        message = message.replace(self._token, "[runtime token]")[:300]
        text = f"{what} -> {status} {code or 'error'}" + (f": {message}" if message else "")
        cls = error_class(code)
        if cls is NotFound:
            cls = not_found
        elif cls is BrokerRuntimeError and (status == 503 or (status in (502, 504) and not code)):
            cls = BrokerUnavailable  # a proxy in front of a broker that is down or restarting
        if not code and cls is BrokerRuntimeError:
            code = "unexpected_response"  # not the broker talking: a wrong URL or a proxy
        return cls(text, status=status, code=code or None)


class _SecretsAPI:
    def __init__(self, backend: Callable[[], RuntimeBackend]) -> None:
        self._backend = backend

    async def get(self, name: str) -> str:
        return (await self._backend().get_secret(name)).value

    async def get_with_version(self, name: str) -> Secret:
        return await self._backend().get_secret(name)


class _OAuthAPI:
    def __init__(self, backend: Callable[[], RuntimeBackend]) -> None:
        self._backend = backend

    async def token(self, min_ttl: float | timedelta | None = None) -> AccessToken:
        """A token valid for at least `min_ttl` seconds (default: the broker's margin)."""
        return await self._backend().get_access_token(min_ttl_seconds(min_ttl))

    async def access_token(self, min_ttl: float | timedelta | None = None) -> str:
        return (await self.token(min_ttl)).access_token

    accessToken = access_token  # the name connector authors know from the TS SDK

    async def refresh(self) -> AccessToken:
        """Force a refresh: call it once when the provider rejects a token with 401."""
        return await self._backend().refresh_access_token()


_installed: RuntimeBackend | None = None
_default: BrokerClient | None = None


def current_backend() -> RuntimeBackend:
    """The installed backend, else the default client built from the environment."""
    global _default
    if _installed is not None:
        return _installed
    if _default is None:
        _default = BrokerClient()
    return _default


def use_client(backend: RuntimeBackend | None) -> RuntimeBackend | None:
    """Route `Secrets`/`OAuth` to `backend` (None: back to the environment); returns the old."""
    global _installed
    previous, _installed = _installed, backend
    return previous


async def aclose() -> None:
    """Close the default client's session (installed clients belong to whoever made them)."""
    global _default
    client, _default = _default, None
    if client is not None:
        await client.close()


Secrets = _SecretsAPI(current_backend)
OAuth = _OAuthAPI(current_backend)
