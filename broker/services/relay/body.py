"""The runtime's request body on its way to the provider: held in memory, or streamed once.

A held body can be sent again (a retry after a forced refresh, a 307 redirect); a streamed
one cannot, and costs the broker one chunk of memory whatever its size. So a body is held
only where a second send may be wanted: an idempotent method on an OAuth connection (the
401 retry), or a small declared body (cheap to keep, and a 307/308 can then be followed).
Everything else streams through. Either way no body is larger than the limit
(`BROKER_PROXY_MAX_BODY_BYTES`): a declared length over it is refused before the provider
is called, and a chunked body that grows past it is cut off and answered 413."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import StreamReader

from broker.errors import PayloadTooLarge

CHUNK = 64 * 1024
SMALL = 64 * 1024
"""A declared body up to this size is held whatever the method."""


class RequestBody:
    def __init__(self, held: bytes | None, stream: StreamReader | None, limit: int) -> None:
        self._held = held
        self._stream = stream
        self._limit = limit
        self.length = len(held) if held is not None else None
        """The exact length to declare (None: chunked)."""
        self.sent = 0
        """Bytes handed to the provider, over every send."""
        self.too_large = False
        """A streamed body ran past the limit (the send failed because of it)."""
        self._started = False

    @property
    def replayable(self) -> bool:
        """It can be sent again: there is none, it is held, or it never started streaming."""
        return self._stream is None or not self._started

    def payload(self) -> bytes | AsyncIterator[bytes] | None:
        """What to hand aiohttp for one send."""
        if self._held is not None:
            self.sent += len(self._held)
            return self._held
        if self._stream is None:
            return None
        return self._streamed(self._stream)

    def drop(self) -> None:
        """No body from now on (a redirect that turns the call into a GET)."""
        self._held, self._stream, self.length = None, None, None

    async def _streamed(self, stream: StreamReader) -> AsyncIterator[bytes]:
        self._started = True
        async for chunk in stream.iter_chunked(CHUNK):
            self.sent += len(chunk)
            if self.sent > self._limit:
                self.too_large = True
                raise PayloadTooLarge(f"request body is larger than {self._limit} bytes")
            yield chunk


async def receive(
    stream: StreamReader, declared: int | None, *, present: bool, hold: bool, limit: int
) -> RequestBody:
    """The body of a proxied request. `declared`: its Content-Length (None: chunked);
    `present`: it has one at all; `hold`: a second send may be wanted."""
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if not present or declared == 0:
        return RequestBody(None, None, limit)
    if hold or (declared is not None and declared <= SMALL):
        held = bytearray()
        async for chunk in stream.iter_chunked(CHUNK):
            held += chunk
            if len(held) > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        return RequestBody(bytes(held), None, limit)
    body = RequestBody(None, stream, limit)
    body.length = declared
    return body
