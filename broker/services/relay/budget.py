"""The per-connection rate budget (`connection.rateLimit`): a token bucket in the store, so
every replica spends from the same one and two runtimes racing on one connection can never
together exceed what the provider allows. Refused calls answer 429 with `Retry-After`
before the provider is asked, so it is the broker, not the provider, that says no: the
tenant's account is never throttled or flagged for the broker's traffic.

The bucket holds `requests` tokens and refills at `requests / perSeconds` a second, so a
connection may burst its whole window at once (as the provider's own fixed or sliding
window would allow) and then runs at the declared rate."""

from __future__ import annotations

import math

from broker.crypto.runtime_tokens import RuntimeGrant
from broker.errors import RateLimited
from broker.manifest import Manifest
from broker.services.context import Context
from broker.store import keys

BUCKET = "egress"
"""The bucket's name under the connection's id (`keys.rate_bucket`)."""


async def spend(ctx: Context, grant: RuntimeGrant, manifest: Manifest) -> None:
    """Take one request from the connection's budget, or refuse with 429 (nothing taken)."""
    limit = manifest.connection.rate_limit
    if limit is None:
        return
    wait = await ctx.store.rate_limit(
        keys.rate_bucket(grant.connection_id, BUCKET),
        limit.requests / limit.per_seconds,
        limit.requests,
    )
    if wait > 0:
        raise RateLimited(
            f"over this connection's rate budget ({limit.requests} requests per "
            f"{limit.per_seconds:g} s, connection.rateLimit)",
            retry_after=max(1, math.ceil(wait)),
        )
