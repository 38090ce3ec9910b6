"""The access log: one line per request with its route template (never the path: a connect
link's path is a one-time credential, and no query string is ever logged: callbacks carry
`code` and `state` in theirs), status and duration; the request's ids come from its log
scope (broker/logs.py). Successful runtime reads are not logged here: the audit log already
records each one, by name and outcome."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from broker.logs import CURRENT
from broker.web.request_guard import is_runtime_path, route_template


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if response.status < 400 and is_runtime_path(request.path):
            return  # the audit log records every runtime read; a second line per read is cost
        scope = CURRENT.get()
        # no scope: aiohttp answered before any route ran (a request it could not parse)
        route = scope.route if scope is not None else route_template(request)
        duration_ms = round(time * 1000, 1)
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            route,
            response.status,
            duration_ms,
            extra={
                "method": request.method,
                "route": route,
                "status": response.status,
                "duration_ms": duration_ms,
                "remote": request.remote,
            },
        )


class UnparseableRequests(logging.Filter):
    """For `aiohttp.server`: a request aiohttp cannot parse is logged there at ERROR with a
    traceback and the parser's message, which quotes the offending line (an Authorization
    header with its token, a path). A client's garbage is not the broker's error: it becomes
    one INFO line naming the kind of problem (the access log has its 400 already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "unparseable request from %s: %s"
            record.args = (remote, type(exc).__name__)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


UNPARSEABLE_REQUESTS = UnparseableRequests()
