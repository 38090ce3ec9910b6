"""A short in-process cache of the broker's answers, so a connector that reads its key or
token on every request does not cost the broker a round trip each time.

An entry is served for at most `ttl` seconds after the broker gave it (a rotated key or a
revoked grant is seen within that), and a token only while it stays valid for the `min_ttl`
asked (default: the broker's refresh margin, 300 s), so a cached token is never one the
broker would have refreshed. Refusals are never cached; a forced refresh replaces the token.
`ttl=0` turns it off. The TypeScript SDK keeps the same rules (sdk/behaviour-cases.json).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from broker.runtime.wire import AccessToken, Secret

DEFAULT_CACHE_TTL = 10.0
DEFAULT_MIN_TTL = 300  # the broker's default refresh margin (BROKER_REFRESH_MARGIN)


class RuntimeCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._secrets: dict[str, tuple[float, Secret]] = {}
        self._token: tuple[float, AccessToken] | None = None

    def _fresh(self, stored_at: float) -> bool:
        return self._clock() - stored_at < self.ttl

    def secret(self, name: str) -> Secret | None:
        entry = self._secrets.get(name)
        return entry[1] if entry is not None and self._fresh(entry[0]) else None

    def put_secret(self, secret: Secret) -> None:
        if self.ttl > 0:
            self._secrets[secret.name] = (self._clock(), secret)

    def token(self, min_ttl: int | None) -> AccessToken | None:
        if self._token is None or not self._fresh(self._token[0]):
            return None
        token = self._token[1]
        wanted = timedelta(seconds=DEFAULT_MIN_TTL if min_ttl is None else min_ttl)
        if token.expires_at is not None and token.expires_at - datetime.now(UTC) < wanted:
            return None
        return token

    def put_token(self, token: AccessToken) -> None:
        self._token = (self._clock(), token) if self.ttl > 0 else None

    def clear(self) -> None:
        self._secrets.clear()
        self._token = None
