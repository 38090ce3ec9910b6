"""Access log without query strings (callbacks carry `code` and `state` in theirs) and with
connect-session tokens masked (the path itself is a one-time credential). Successful runtime
reads are not logged here: the audit log already records each one, by name and outcome."""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from broker.web.request_guard import is_runtime_path, loggable_path


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.path
        if response.status < 400 and is_runtime_path(path):
            return  # the audit log records every runtime read; a second line per read is cost
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            loggable_path(path),
            response.status,
            time * 1000,
        )
