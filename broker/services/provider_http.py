"""Sending a prepared OAuth request (from `broker.oauth`) to a provider, with hard limits.

Bounded time, no redirects (a token endpoint that redirects is misconfigured or hostile, and
following would resend client credentials), a capped body read to its end, and every network
failure turned into `TransientProviderError`, so callers back off instead of marking a grant
dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from broker.manifest import OAuthConfig
from broker.oauth import (
    MalformedTokenResponse,
    TokenRequest,
    TransientProviderError,
    parse_token_response,
)
from broker.services.context import Context
from broker.services.records import StoredToken

MAX_SECONDS = 10.0
MAX_RESPONSE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ProviderResponse:
    status: int
    content_type: str | None
    body: bytes
    sent_at: float
    """When the request was sent: `expires_at = sent_at + expires_in` (DESIGN 5)."""


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
    its lock has left (`services.refresh_lock`)."""
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
    return ProviderResponse(status, content_type, body, sent_at)


async def obtain_token(
    ctx: Context,
    request: TokenRequest,
    config: OAuthConfig,
    *,
    requested_scopes: Sequence[str],
    previous_refresh_token: str | None = None,
    redact: Sequence[str] = (),
    seconds: float = MAX_SECONDS,
) -> StoredToken:
    """Send a token request (code exchange, refresh, client credentials) and parse the answer
    with the manifest's provider quirks; `redact` values never appear in an error."""
    answer = await send(ctx, request, seconds)
    tokens = parse_token_response(
        answer.status,
        answer.content_type,
        answer.body,
        sent_at=answer.sent_at,
        default_expires_in=config.default_expires_in,
        previous_refresh_token=previous_refresh_token,
        requested_scopes=requested_scopes,
        bearer_aliases=config.bearer_token_types,
        redact=redact,
    )
    return StoredToken.from_token_set(tokens, answer.sent_at)
