"""POST /v1/webhooks/verify: the platform forwards a provider's delivery as it arrived."""

from __future__ import annotations

from aiohttp import web

from broker.errors import BrokerError, InvalidRequest
from broker.services import webhook_verify
from broker.web.state import CONTEXT

routes = web.RouteTableDef()


@routes.post("/v1/webhooks/verify")
async def verify(request: web.Request) -> web.Response:
    connection_id = request.query.get("connection_id")
    if not connection_id:
        raise InvalidRequest("connection_id is required")
    body = await request.read()
    try:
        verified = await webhook_verify.verify(
            request.app[CONTEXT], connection_id, body, request.headers
        )
    except BrokerError as exc:
        if exc.status >= 500 or exc.code in ("not_found", "invalid_request"):
            raise
        # a verdict on the delivery, in the error shape plus `valid`
        return web.json_response(
            {"valid": False, "error": exc.code, "message": str(exc)}, status=exc.status
        )
    return web.json_response(
        {
            "valid": True,
            "scheme": verified.scheme,
            "delivery_id": verified.delivery_id,
            "timestamp": verified.timestamp,
            "secret_index": verified.secret_index,
        }
    )
