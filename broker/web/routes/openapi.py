"""GET /openapi.json: the OpenAPI 3.1 document of this API (anyone, no auth)."""

from __future__ import annotations

import importlib.metadata
import json
import weakref

from aiohttp import web

from broker.web.openapi.document import create_document
from broker.web.openapi.spec import Operations, Reply

routes = web.RouteTableDef()
operation = Operations("health")

_documents: weakref.WeakKeyDictionary[web.Application, bytes] = weakref.WeakKeyDictionary()


def broker_version() -> str:
    try:
        return importlib.metadata.version("broker")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def document_bytes(app: web.Application) -> bytes:
    """Built from the app's router on the first request, then served as is: the routes do
    not change once the app runs."""
    found = _documents.get(app)
    if found is None:
        document = create_document(app.router, broker_version())
        found = _documents[app] = json.dumps(document, separators=(",", ":")).encode()
    return found


@routes.get("/openapi.json")
@operation(
    "openapi",
    "This OpenAPI 3.1 document",
    answers={200: Reply("the document", schema={"type": "object"})},
    store=False,
)
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(request.app), content_type="application/json")
