"""GET /v1/events: the event log in id order, for pull consumers."""

from __future__ import annotations

from aiohttp import web

from broker.errors import InvalidRequest
from broker.services import events
from broker.web.state import CONTEXT

routes = web.RouteTableDef()

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


@routes.get("/v1/events")
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
