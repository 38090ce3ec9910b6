"""GET /openapi.json: the OpenAPI 3.1 document of this API (anyone, no auth)."""

from __future__ import annotations

import functools
import importlib.metadata
import json

from aiohttp import web

from broker.web.openapi import create_document

routes = web.RouteTableDef()


def broker_version() -> str:
    try:
        return importlib.metadata.version("broker")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@functools.cache
def document_bytes() -> bytes:
    """Built on the first request, then served as is: the document never changes in a process."""
    return json.dumps(create_document(broker_version()), separators=(",", ":")).encode()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")
