"""POST /v1/webhooks/verify: the platform forwards a provider's delivery as it arrived."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from broker.errors import BrokerError, InvalidRequest
from broker.logs import note_connection
from broker.manifest import WEBHOOK_SCHEMES
from broker.services import webhook_verify
from broker.web.openapi.spec import Operations, json_reply, query
from broker.web.state import CONTEXT
from broker.web.wire import Error

routes = web.RouteTableDef()
operation = Operations("webhooks")


class Verified(BaseModel):
    valid: Literal[True]
    scheme: WEBHOOK_SCHEMES
    delivery_id: str
    timestamp: int | None = Field(description="the signed send time, unix seconds")
    secret_index: int = Field(ge=0, description="0: the current")


class WebhookRejection(Error):
    """A verdict on the delivery: the error shape plus `valid: false`."""

    valid: Literal[False] | None = Field(
        None, description="set when the verdict is on the delivery"
    )


@routes.post("/v1/webhooks/verify")
@operation(
    "verifyWebhook",
    "Verify a provider's webhook delivery, forwarded as it arrived",
    description=(
        "The body is the provider's raw body; its signature headers go as sent (e.g. "
        "Stripe-Signature, X-Hub-Signature-256, X-Shopify-Hmac-Sha256, X-Slack-Signature "
        "with X-Slack-Request-Timestamp, webhook-id/-timestamp/-signature or svix-*)."
    ),
    params=(query("connection_id", "the connection", required=True),),
    content={"*/*": {"type": "string", "contentMediaType": "application/octet-stream"}},
    answers={
        200: json_reply("authentic", Verified),
        400: json_reply(
            "`invalid_request` (no connection_id, no webhooks); with `valid: false`: "
            "`missing_header`, `malformed_header`, `unknown_scheme`, `webhook_secret_unset`",
            WebhookRejection,
        ),
        401: json_reply(
            "`unauthorized` (the admin token); with `valid: false`: `invalid_signature`, "
            "`timestamp_out_of_tolerance`",
            WebhookRejection,
        ),
        409: json_reply("`replayed`, with `valid: false`: verified before", WebhookRejection),
    },
    errors={
        404: "`not_found`: no such connection",
        500: "`unusable_webhook_secret`: the configured secret cannot sign",
    },
)
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
        # a verdict on the delivery comes after the connection was found: a known id
        note_connection(connection_id, None)
        # a verdict on the delivery, in the error shape plus `valid`
        return web.json_response(
            {"valid": False, "error": exc.code, "message": str(exc)}, status=exc.status
        )
    note_connection(connection_id, None)
    return web.json_response(
        {
            "valid": True,
            "scheme": verified.scheme,
            "delivery_id": verified.delivery_id,
            "timestamp": verified.timestamp,
            "secret_index": verified.secret_index,
        }
    )
