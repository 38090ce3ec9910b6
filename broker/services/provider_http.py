"""Sending a prepared OAuth request (from `broker.oauth`) to a provider, with hard limits.

Bounded time, no redirects (a token endpoint that redirects is misconfigured or hostile, and
following would resend client credentials), a capped body, and every network failure turned
into `TransientProviderError`, so callers back off instead of marking a grant dead.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from broker.oauth import TokenRequest, TransientProviderError
from broker.services.context import Context

MAX_SECONDS = 10.0
MAX_RESPONSE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ProviderResponse:
    status: int
    content_type: str | None
    body: bytes
    sent_at: float
    """When the request was sent: `expires_at = sent_at + expires_in` (DESIGN 5)."""


async def send(ctx: Context, request: TokenRequest) -> ProviderResponse:
    seconds = min(MAX_SECONDS, ctx.settings.refresh_lock_ttl * 0.6)
    timeout = aiohttp.ClientTimeout(total=seconds, connect=min(5.0, seconds))
    sent_at = ctx.clock()
    try:
        async with ctx.http.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body,
            allow_redirects=False,
            timeout=timeout,
        ) as resp:
            body = await resp.content.read(MAX_RESPONSE_BYTES + 1)
            content_type = resp.headers.get("Content-Type")
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransientProviderError(
            f"the provider could not be reached ({type(exc).__name__})", error="unreachable"
        ) from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise TransientProviderError("the provider's response is too large", error="too_large")
    return ProviderResponse(status, content_type, body, sent_at)
