"""GET /v1/events: the event log in id order, for pull consumers."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, WithJsonSchema

from broker.errors import InvalidRequest
from broker.services import events
from broker.web.openapi.spec import Operations, json_reply, page_size, query
from broker.web.state import CONTEXT

routes = web.RouteTableDef()
operation = Operations("events")

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
EVENT_ID = {"type": "string", "pattern": f"^{events.EVENT_ID.pattern}$"}
CURSOR = {"type": "string", "pattern": f"^({events.EVENT_ID.pattern})?$"}
"""An event id, or empty for the start (a `next` of null sent back as it came)."""


class Event(BaseModel):
    """An event, as listed and as delivered."""

    id: Annotated[str, WithJsonSchema(EVENT_ID)]
    type: Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(events.EVENT_TYPES)})]
    created_at: Annotated[
        str,
        WithJsonSchema(
            {"type": "string", "format": "date-time", "description": "ISO-8601 UTC, ms"}
        ),
    ]
    tenant_id: str | None
    connection_id: str | None
    connector: str | None
    data: dict[str, Any] = Field(description="names, statuses and error codes")


class Events(BaseModel):
    events: list[Event]
    next: str | None = Field(description="pass as `after` for the next page")


@routes.get("/v1/events")
@operation(
    "listEvents",
    "Connection events in order (the newest held back briefly)",
    params=(
        query("after", "the `next` of an earlier page (empty or absent: the start)", CURSOR),
        page_size(MAX_LIMIT, DEFAULT_LIMIT),
    ),
    answers={200: json_reply("a page; an empty one keeps the cursor", Events)},
    errors={400: "`invalid_request`: bad after or limit"},
)
async def list_events(request: web.Request) -> web.Response:
    after = request.query.get("after") or None
    if after is not None and not events.is_event_id(after):
        raise InvalidRequest("after must be an event id (evt_...)")
    raw_limit = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    found = await events.list_after(request.app[CONTEXT], after, int(raw_limit))
    # an empty page keeps the cursor where it was
    return web.json_response(
        {"events": [events.payload(e) for e in found], "next": found[-1].id if found else after}
    )
