"""The OpenAPI 3.1 document, generated from the router and the operations declared beside
the handlers (`broker.web.openapi.spec`).

Methods and paths come from the router, so a route cannot go undocumented (a route without
an operation is an error here, and a test builds the document). Bodies and answers are the
declared pydantic models, in `components/schemas` under their titles. The rules the request
guard applies to every route are applied here the same way, by path: /v1/runtime/* takes
the `runtime` bearer token and every other /v1/* path the `admin` one (401 without it); a
request body can be too large (413); an operation that touches the store answers 503 when
the store is down; on a browser's paths every failure is an HTML page; every answer carries
`X-Request-Id`.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import CoreSchema

from broker.logs import REQUEST_ID_HEADER
from broker.web.openapi.spec import Operation, Param, Reply, Schema, operation_of
from broker.web.request_guard import (
    BROWSER_PATHS,
    UNMATCHED,
    is_admin_path,
    is_runtime_path,
)
from broker.web.wire import Error

REF = "#/components/schemas/{model}"
STORE_DOWN = "`store_unavailable`: the store cannot be reached"
TIMED_OUT = "`timeout`: no answer within `BROKER_REQUEST_TIMEOUT`"
RATE_LIMITED = (
    "`rate_limited`: over the limit of the client address (`BROKER_CONNECT_RATE_LIMIT`) or "
    "the runtime token (`BROKER_RUNTIME_RATE_LIMIT`); retry after `Retry-After` seconds"
)
SECURITY_SCHEMES = {
    "admin": {"type": "http", "scheme": "bearer", "description": "an admin token"},
    "runtime": {
        "type": "http",
        "scheme": "bearer",
        "description": "a runtime token from POST /v1/runtime-tokens",
    },
}
INFO = {
    "title": "broker",
    "summary": "An async OAuth-and-credentials broker for connector platforms",
    "description": (
        'JSON everywhere; every error is `{"error": "<code>", "message": "..."}`. '
        "Times are ISO-8601 UTC. Admin routes take the admin bearer token, "
        "/v1/runtime/ routes a runtime token. Every response carries `X-Request-Id`: the "
        "request's own `X-Request-Id` when it is 1 to 128 of `A-Za-z0-9._-`, else a new "
        "id; the broker's log lines for the request carry it too."
    ),
}
REQUEST_ID = {
    "description": "the request's id, as its log lines carry it",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
}


class _Schemas(GenerateJsonSchema):
    # a field's title would only repeat its name
    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


def create_document(router: web.UrlDispatcher, version: str) -> dict[str, Any]:
    routed: list[tuple[str, str, Operation]] = []
    for route in router.routes():
        resource = route.resource
        if resource is None or resource.name == UNMATCHED or route.method == "HEAD":
            continue  # HEAD is GET's twin; the catch-all answers 404/405 only
        path = resource.canonical
        found = operation_of(route.handler)
        if found is None:
            raise LookupError(f"{route.method} {path} declares no operation")
        _check_path_params(route.method, path, found.params)
        routed.append((route.method.lower(), path, found))
    refs, components = _components([op for _, _, op in routed])
    paths: dict[str, dict[str, Schema]] = {}
    for method, path, op in routed:
        paths.setdefault(path, {})[method] = _operation(path, op, refs)
    return {
        "openapi": "3.1.0",
        "info": {**INFO, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": SECURITY_SCHEMES,
            "headers": {"RequestId": REQUEST_ID},
        },
    }


def _check_path_params(method: str, path: str, params: tuple[Param, ...]) -> None:
    in_template = re.findall(r"\{(\w+)", path)
    declared = [p.name for p in params if p.where == "path"]
    if sorted(in_template) != sorted(declared):
        raise LookupError(f"{method} {path} declares path parameters {declared}")


Refs = dict[object, Schema]
"""A model's `$ref`, by model."""


def _components(ops: list[Operation]) -> tuple[Refs, dict[str, Schema]]:
    """Every model's reference and the component schemas, named by the models' titles."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
    for op in ops:
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        for reply in op.answers.values():
            if reply.model is not None:
                wanted[(reply.model, "serialization")] = None
    keyed, defs = models_json_schema(list(wanted), ref_template=REF, schema_generator=_Schemas)
    schemas: dict[str, Schema] = defs.get("$defs", {})
    # a model may take the name of the record it shows (`OAuthApp`) by its title
    renamed = {name: schema.get("title", name) for name, schema in schemas.items()}
    if len(set(renamed.values())) != len(renamed):
        raise ValueError(f"two component schemas share a title: {sorted(renamed.values())}")
    refs: Refs = {model: _renamed(ref, renamed) for (model, _), ref in keyed.items()}
    components = {renamed[name]: _renamed(schema, renamed) for name, schema in schemas.items()}
    return refs, components


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _renamed(value, names) for key, value in node.items()}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        out["$ref"] = REF.format(model=names[ref.rsplit("/", 1)[1]])
    return out


def _operation(path: str, op: Operation, refs: Refs) -> Schema:
    out: Schema = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = [_param(p) for p in op.params]
    if op.body is not None:
        out["requestBody"] = _body({"application/json": refs[op.body]})
    elif op.content is not None:
        out["requestBody"] = _body(dict(op.content))
    implied: dict[int, str] = {}
    if op.body is not None:
        implied[400] = "`invalid_request`: not a JSON object of this shape"
    scheme = _security_of(path)
    if scheme is not None:
        out["security"] = [{scheme: []}]
        implied[401] = f"`unauthorized`: missing, bad or expired {scheme} token"
    if op.body is not None or op.content is not None:
        implied[413] = "`payload_too_large`: the body is over `BROKER_MAX_BODY_BYTES`"
    if path.startswith(BROWSER_PATHS) or is_runtime_path(path):
        implied[429] = RATE_LIMITED
    implied[503] = f"{STORE_DOWN}; {TIMED_OUT}" if op.store else TIMED_OUT
    failures = {
        s: "; ".join(t for t in (op.errors.get(s), implied.get(s)) if t)
        for s in {*implied, *op.errors}
    }
    # the request guard answers a browser with pages; a 429 carries Retry-After
    headers = {s: {"Retry-After": "seconds to wait"} if s == 429 else {} for s in failures}
    if path.startswith(BROWSER_PATHS):
        failed = {
            s: Reply(f"{text} (an HTML page)", media="text/html", headers=headers[s])
            for s, text in failures.items()
        }
    else:
        failed = {s: Reply(text, model=Error, headers=headers[s]) for s, text in failures.items()}
    responses = {**failed, **op.answers}
    out["responses"] = {str(s): _response(responses[s], refs) for s in sorted(responses)}
    return out


def _security_of(path: str) -> str | None:
    """The bearer scheme the request guard demands on `path` (it decides by path too)."""
    if is_runtime_path(path):
        return "runtime"
    return "admin" if is_admin_path(path) else None


def _param(param: Param) -> Schema:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "description": param.description,
        "schema": param.schema,
    }


def _body(content: dict[str, Schema]) -> Schema:
    return {"required": True, "content": {media: {"schema": s} for media, s in content.items()}}


def _response(reply: Reply, refs: Refs) -> Schema:
    out: Schema = {"description": reply.description}
    if reply.model is not None:
        out["content"] = {"application/json": {"schema": refs[reply.model]}}
    elif reply.schema is not None:
        out["content"] = {"application/json": {"schema": reply.schema}}
    elif reply.media is not None:
        media = (reply.media,) if isinstance(reply.media, str) else reply.media
        out["content"] = {m: {"schema": {"type": "string"}} for m in media}
    out["headers"] = {
        REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"},
        **{
            name: {"description": text, "schema": {"type": "string", "format": "uri"}}
            if name == "Location"
            else {"description": text, "schema": {"type": "string"}}
            for name, text in reply.headers.items()
        },
    }
    return out
