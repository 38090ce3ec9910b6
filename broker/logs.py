"""Log lines: text for a terminal, or one JSON object per line for a log shipper
(`BROKER_LOG_FORMAT`), both carrying the request a line was written for.

The request wrapper opens a `RequestScope` per request in a context variable (each aiohttp
request runs in its own task, so the scope ends with it); a filter on the handler copies the
scope's fields onto every record written meanwhile, the access line included. Only names,
ids, route templates, statuses and durations go into a scope, never a value, and an
exception's text is left out of every line (it can quote a provider's answer or a stored
value): its type and frames are enough to find the place.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

REQUEST_ID_HEADER = "X-Request-Id"
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class RequestScope:
    """What the lines of one request share; `connection_id` and `tenant_id` once a handler
    has resolved them (from a record or a verified grant, never from the request as sent)."""

    __slots__ = ("connection_id", "method", "request_id", "route", "tenant_id")

    def __init__(self, request_id: str, method: str, route: str) -> None:
        self.request_id = request_id
        self.method = method
        self.route = route
        self.connection_id: str | None = None
        self.tenant_id: str | None = None


CURRENT: ContextVar[RequestScope | None] = ContextVar("broker_request_scope", default=None)


def request_id_from(header: str | None) -> str:
    """The caller's `X-Request-Id` when well-formed (so its id follows the request across
    services), else a new random one: an id that is echoed and logged must not carry
    spaces, quotes or line breaks."""
    if header is not None and _WELL_FORMED_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)


def begin_request(request_id_header: str | None, method: str, route: str) -> RequestScope:
    scope = RequestScope(request_id_from(request_id_header), method, route)
    CURRENT.set(scope)
    return scope


def note_connection(connection_id: str | None, tenant_id: str | None) -> None:
    """The connection (and tenant) the current request turned out to be about."""
    scope = CURRENT.get()
    if scope is not None:
        scope.connection_id = connection_id
        scope.tenant_id = tenant_id


SCOPE_FIELDS = ("request_id", "method", "route", "connection_id", "tenant_id")
FIELDS = (*SCOPE_FIELDS, "status", "duration_ms", "remote")
"""The structured fields a line may carry, in the order a JSON line has them."""


class RequestScopeFilter(logging.Filter):
    """Stamps the current request's fields onto a record (fields the record was given by
    `extra=` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = CURRENT.get()
        if scope is not None:
            fields = record.__dict__
            for name in SCOPE_FIELDS:
                if fields.get(name) is None:
                    fields[name] = getattr(scope, name)
        return True


def exception_without_text(exc: BaseException) -> str:
    """A traceback (the chain too) with each exception's type where its text would be."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        name = type(current).__module__ + "." + type(current).__qualname__
        parts.append(f"Traceback (most recent call last):\n{frames}{name} (text withheld)")
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return "\n\nwhich was raised while handling:\n\n".join(parts)


class TextFormatter(logging.Formatter):
    """`time level logger message` and the request's ids, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # not `Formatter.format`: it reuses an exception text another handler cached
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        fields = record.__dict__
        ids = " ".join(
            f"{name}={fields[name]}"
            for name in ("request_id", "connection_id", "tenant_id")
            if fields.get(name) is not None
        )
        if ids:
            line += f" [{ids}]"
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + exception_without_text(record.exc_info[1])
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO-8601 UTC), level, logger, message, then whichever
    of `FIELDS` the line has, then `exception` (the traceback, text withheld)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for name in FIELDS:
            value = fields.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = exception_without_text(record.exc_info[1])
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes every control character: a line can never be split or forged
        return json.dumps(line, default=str)


def configure_logging(
    log_format: LogFormat, level: LogLevel, stream: TextIO | None = None
) -> logging.Handler:
    """The process's one log handler (on the root logger, replacing any): every library's
    lines, and Python's warnings, come out in the same format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestScopeFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
