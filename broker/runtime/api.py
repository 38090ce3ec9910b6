"""The calls connector code makes (`Secrets.get`, `OAuth.access_token`, ...) over any backend
that answers the runtime API: a `BrokerClient`, or the test runtime's fakes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from broker.runtime.http import HttpBackend
from broker.runtime.wire import AccessToken, Secret


class RuntimeBackend(HttpBackend, Protocol):
    """What `Secrets`, `OAuth` and `Http` call: a `BrokerClient`, or the test runtime's fakes."""

    async def get_secret(self, name: str) -> Secret: ...

    async def get_access_token(self, min_ttl: int | None = None) -> AccessToken: ...

    async def refresh_access_token(self) -> AccessToken: ...


def min_ttl_seconds(min_ttl: float | timedelta | None) -> int | None:
    if min_ttl is None:
        return None
    seconds = min_ttl.total_seconds() if isinstance(min_ttl, timedelta) else float(min_ttl)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("min_ttl must be a finite number of seconds >= 0")
    return math.ceil(seconds)


class SecretsAPI:
    def __init__(self, backend: Callable[[], RuntimeBackend]) -> None:
        self._backend = backend

    async def get(self, name: str) -> str:
        return (await self._backend().get_secret(name)).value

    async def get_with_version(self, name: str) -> Secret:
        return await self._backend().get_secret(name)


class OAuthAPI:
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
