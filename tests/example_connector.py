"""A tiny connector, the example in docs/runtime-sdk.md: sync customers from a provider API.

The provider wants an app-level API key (a setting) and the tenant's OAuth access token,
as e.g. Google Ads does with its developer token. HTTP goes through `fetch` so tests can
answer it; production code passes a function built on its aiohttp session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.runtime import NeedsReauth, OAuth, Secrets

CUSTOMERS_URL = "https://api.provider.example/v1/customers"

Fetch = Callable[[str, Mapping[str, str]], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class SyncResult:
    status: str  # "ok" or "needs_reauth"
    customers: list[dict[str, str]]


class SyncFailed(Exception):
    pass


async def sync_customers(fetch: Fetch) -> SyncResult:
    api_key = await Secrets.get("api_key")
    try:
        # ask for a minute of validity: the sync must not start on a token about to lapse
        token = await OAuth.access_token(min_ttl=60)
        status, body = await fetch(CUSTOMERS_URL, _headers(api_key, token))
        if status == 401:
            # revoked or rotated early: one forced refresh, then one retry, never a loop
            token = (await OAuth.refresh()).access_token
            status, body = await fetch(CUSTOMERS_URL, _headers(api_key, token))
    except NeedsReauth:
        # only a human can fix this; report it instead of failing the run over and over
        return SyncResult("needs_reauth", [])
    if status != 200:
        raise SyncFailed(f"provider answered {status}")
    return SyncResult("ok", [{"id": c["id"], "name": c["name"]} for c in body["data"]])


def _headers(api_key: str, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Api-Key": api_key}
