"""`BrokerClient`: the runtime API over HTTP (aiohttp): secrets and tokens, kept a few
seconds in a `RuntimeCache`, and provider calls through the egress proxy. Retries and error
mapping are the `Transport`'s.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from broker.runtime.api import OAuthAPI, SecretsAPI
from broker.runtime.cache import DEFAULT_CACHE_TTL, RuntimeCache
from broker.runtime.errors import NotConfigured, SecretNotSet
from broker.runtime.http import HttpAPI
from broker.runtime.transport import Transport
from broker.runtime.wire import (
    AccessToken,
    HttpResponse,
    Secret,
    bad_answer,
    parse_access_token,
    parse_secret,
)

URL_ENV = "BROKER_URL"
TOKEN_ENV = "BROKER_RUNTIME_TOKEN"
PROXY_PATH = "/v1/runtime/proxy"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


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
        cache_ttl: float = DEFAULT_CACHE_TTL,
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
        self._transport = Transport(
            self._base,
            token,
            retries,
            backoff,
            max_backoff,
            request_timeout,
            connect_timeout,
            total_timeout,
        )
        self.cache = RuntimeCache(cache_ttl)
        self._external = session
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # the same facades as the module-level ones, bound to this client
        self.secrets = SecretsAPI(lambda: self)
        self.oauth = OAuthAPI(lambda: self)
        self.http = HttpAPI(lambda: self)

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
        if (cached := self.cache.secret(name)) is not None:
            return cached
        path = f"/v1/runtime/secrets/{quote(name, safe='')}"
        secret = parse_secret(await self._json("GET", path, not_found=SecretNotSet), name)
        self.cache.put_secret(secret)
        return secret

    async def get_access_token(self, min_ttl: int | None = None) -> AccessToken:
        if (cached := self.cache.token(min_ttl)) is not None:
            return cached
        params = {} if min_ttl is None else {"min_ttl": str(min_ttl)}
        path = "/v1/runtime/oauth/access-token"
        token = parse_access_token(await self._json("GET", path, params=params))
        self.cache.put_token(token)
        return token

    async def refresh_access_token(self) -> AccessToken:
        token = parse_access_token(await self._json("POST", "/v1/runtime/oauth/refresh"))
        self.cache.put_token(token)
        return token

    async def proxy(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        answer = await self._transport.send(
            self._http(),
            method,
            PROXY_PATH,
            headers={**headers, "Broker-Target": url},
            body=body,
            idempotent=method in IDEMPOTENT,
            proxied=True,
        )
        return HttpResponse(answer.status, answer.headers, answer.body)

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

    async def _json(self, method: str, path: str, **options: Any) -> object:
        headers = {"Accept": "application/json"}
        answer = await self._transport.send(self._http(), method, path, headers=headers, **options)
        try:
            return json.loads(answer.body)
        except ValueError:
            raise bad_answer(f"{method} {path}") from None
