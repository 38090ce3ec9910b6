"""Sending one request to a provider's token or revocation endpoint, with hard limits:
bounded time, no redirects (a token endpoint that redirects is misconfigured or hostile, and
following would resend client credentials), a body read to its end against a running cap,
and every network failure turned into `TransientProviderError`, so callers back off instead
of marking a grant dead. `provider` assembles the requests; this module only sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from broker.oauth import MalformedTokenResponse, TokenRequest, TransientProviderError
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
    retry_after: str | None = None
    """The `Retry-After` header (a 429 or 503 says when to come back)."""


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, read to its end (chunked, Content-Length or until close), or None as
    soon as it is known to pass `limit` bytes. `resp.content.read(n)` is not that: it returns
    what has arrived so far, so an answer sent in several TCP segments was cut short."""
    if resp.content_length is not None and resp.content_length > limit:
        return None
    body = bytearray()
    async for piece in resp.content.iter_any():
        body += piece
        if len(body) > limit:
            return None
    return bytes(body)


async def send(
    ctx: Context, request: TokenRequest, seconds: float = MAX_SECONDS
) -> ProviderResponse:
    """`seconds` bounds the whole exchange (at most `MAX_SECONDS`): a refresh passes what
    its lock has left (`services.refresh.lock`)."""
    seconds = min(MAX_SECONDS, seconds)
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
            body = await read_capped(resp, MAX_RESPONSE_BYTES)
            content_type = resp.headers.get("Content-Type")
            retry_after = resp.headers.get("Retry-After")
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransientProviderError(
            f"the provider could not be reached ({type(exc).__name__})", error="unreachable"
        ) from None
    if body is None:
        raise MalformedTokenResponse(
            f"the provider answered HTTP {status} with a body larger than "
            f"{MAX_RESPONSE_BYTES // 1024} KiB",
            provider_status=status,
        )
    return ProviderResponse(status, content_type, body, sent_at, retry_after)
