"""Serving the app: aiohttp's runner with the broker's header limits and answers, and the
graceful shutdown `broker serve` does on SIGTERM or SIGINT.

A shutdown (`serve`): /readyz turns 503 (`shutting_down`); the listener closes, so new
connections are refused; idle keep-alive connections close; requests in flight get
`BROKER_SHUTDOWN_GRACE` seconds to finish, then are cancelled; the app's cleanup
(`web.app`) lets the refresher's and event worker's turns and the refreshes under way
finish in what is left of the grace, flushes the audit buffer and closes the store. The
process then exits 0.

A request aiohttp cannot parse never reaches the app: aiohttp answers it itself, with a
text body that quotes the offending line (an `Authorization` header, token and all). Its
connection handler is replaced here so that such a request gets the broker's JSON error
instead, with nothing of the request in it: 431 `headers_too_large` for a request line or
header over `BROKER_MAX_HEADER_BYTES` or too many headers, else 400 `invalid_request`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from broker.errors import BrokerError, ConfigError, HeadersTooLarge, InvalidRequest
from broker.logs import REQUEST_ID_HEADER, request_id_from
from broker.web.access_log import AccessLogger
from broker.web.request_guard import error_body
from broker.web.state import DEADLINES, SETTINGS, SHUTDOWN

log = logging.getLogger("broker")

MAX_HEADERS = 128
"""Header lines a request may have (aiohttp's default, kept)."""


def _unparsed(status: int, exc: BaseException | None) -> BrokerError:
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message
    ):
        return HeadersTooLarge("the request line or a header is too long, or too many headers")
    if status == 500:
        return BrokerError("internal error")
    return InvalidRequest("the request is not valid HTTP/1.1")


class _Connection(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        # aiohttp's: logs (`access_log.UnparseableRequests` rewrites the line), and raises
        # when part of an answer was sent already
        super().handle_error(request, status, exc, message)
        error = _unparsed(status, exc)
        response = error_body(error.code, str(error), error.status)
        # no request guard ran, but every answer carries an id (the OpenAPI document says so)
        response.headers[REQUEST_ID_HEADER] = request_id_from(None)
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's server, whose connections are `_Connection`s."""

    def __init__(self, made: web.Server, **kwargs: Any) -> None:
        super().__init__(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **kwargs,
        )
        self._connection_args = kwargs
        self._event_loop = asyncio.get_running_loop()

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._event_loop, **self._connection_args)


_NOT_CONNECTIONS = ("handle_signals", "shutdown_timeout", "handler_cancellation")


class BrokerRunner(web.AppRunner):
    """`web.AppRunner` with the app's settings: header limits, the shutdown grace, the access
    log, and the JSON answer to requests that cannot be parsed. Tests serve through it too
    (`tests.helpers.broker_client`)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        settings = app[SETTINGS]
        kwargs = {
            "access_log_class": AccessLogger,
            "max_line_size": settings.max_header_bytes,
            "max_field_size": settings.max_header_bytes,
            "max_headers": MAX_HEADERS,
            "shutdown_timeout": settings.shutdown_grace,
            **kwargs,
        }
        # what aiohttp hands on to each connection (`RequestHandler`)
        self._connection_args = {k: v for k, v in kwargs.items() if k not in _NOT_CONNECTIONS}
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), **self._connection_args)


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (the module docstring)."""
    runner = BrokerRunner(app)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:  # a port in use, an address not ours: the operator's to fix
            raise ConfigError(
                f"BROKER_HOST, BROKER_PORT: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        app[SHUTDOWN].begin()
        log.info(
            "shutting down: %d requests in flight get %g s",
            len(app[DEADLINES]),
            app[SETTINGS].shutdown_grace,
        )
    finally:
        await runner.cleanup()
    log.info("shut down")
