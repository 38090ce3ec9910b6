"""Cross-cutting request handling: JSON errors and authentication by path."""

from __future__ import annotations

import hmac
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from broker.crypto.runtime_tokens import verify_runtime_token
from broker.errors import BrokerError, PayloadTooLarge, Unauthorized
from broker.web.state import GRANT, KEYRING, SETTINGS

log = logging.getLogger("broker.web")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str, status: int) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as `{"error", "message"}`; unexpected ones say nothing more
    (an exception's text may hold a value we must not echo)."""
    try:
        return await handler(request)
    except BrokerError as exc:
        return error_body(exc.code, str(exc), exc.status)
    except web.HTTPRequestEntityTooLarge:
        exc2 = PayloadTooLarge("request body is too large")
        return error_body(exc2.code, str(exc2), exc2.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_body(code, exc.reason, exc.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_body("internal_error", "internal error", 500)


MAX_BODY_BYTES = 256 * 1024


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared oversized body before any handler runs; a chunked one is still capped
    when read (`client_max_size`)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    return await handler(request)


def is_admin_path(path: str) -> bool:
    return path.startswith("/v1/") and not path.startswith("/v1/runtime/")


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1 route except the runtime ones takes an admin bearer token. Deciding by path
    means a new admin route cannot forget its check."""
    if is_admin_path(request.path):
        presented = bearer_token(request)
        tokens = request.app[SETTINGS].admin_token
        # compare against every token so timing does not tell which one (or how many) matched
        matches = [
            hmac.compare_digest(presented.encode(), t.get_secret_value().encode()) for t in tokens
        ]
        if not any(matches):
            raise Unauthorized("invalid admin token")
    return await handler(request)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


@web.middleware
async def runtime_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """/v1/runtime routes take a runtime token, verified without a store round trip."""
    if request.path.startswith("/v1/runtime/"):
        keyring = request.app[KEYRING].current
        request[GRANT] = verify_runtime_token(keyring, bearer_token(request), now=time.time())
    return await handler(request)
