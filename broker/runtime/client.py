"""`BrokerClient`: the runtime API over HTTP, with bounded timeouts and retries on 503.

Only `BrokerUnavailable` is retried (exponential backoff with full jitter, bounded in count
and in total time); a 4xx is an answer, and asking again would not change it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from urllib.parse import quote, urlsplit

import aiohttp

from broker.runtime.api import OAuthAPI, SecretsAPI
from broker.runtime.errors import (
    BrokerRuntimeError,
    BrokerUnavailable,
    NotConfigured,
    NotFound,
    SecretNotSet,
    error_class,
)
from broker.runtime.wire import AccessToken, Secret, bad_answer, parse_access_token, parse_secret

# the name the SDK has always logged under, which connector code may have configured
logger = logging.getLogger("broker.runtime")

URL_ENV = "BROKER_URL"
TOKEN_ENV = "BROKER_RUNTIME_TOKEN"


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
        self.secrets = SecretsAPI(lambda: self)
        self.oauth = OAuthAPI(lambda: self)

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
                        raise bad_answer(what) from None
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
