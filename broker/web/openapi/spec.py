"""What each route declares beside its handler, for the document and for the request.

A route module stacks, under aiohttp's `@routes.<method>(path)`:

    @operation("createConnection", "Create a connection", answers=..., errors=...)
    @json_body(CreateConnection)
    async def create_connection(request: web.Request, body: CreateConnection) -> ...

`operation` records the operation (summary, parameters, answers, error statuses) against the
handler and returns it unchanged, so a route without a body costs nothing per request: the
runtime reads go straight to their handlers. `json_body` is the one that runs per request:
it reads the body, validates it with the request model (unknown fields refused, types
strict) and passes the model on, so the documented body is the validated body. The route's
method and path come from the router itself (`broker.web.openapi.document` walks it).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from broker.web.wire import read_model

Schema = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
M = TypeVar("M", bound=BaseModel)

STRING: Schema = {"type": "string"}


@dataclass(frozen=True)
class Param:
    """A path or query parameter. Path parameters must be the route template's, all of them."""

    name: str
    where: Literal["path", "query"]
    description: str
    schema: Schema = field(default_factory=lambda: dict(STRING))
    required: bool = False


def schema_of(annotation: Any) -> Schema:
    """The JSON Schema of a type, e.g. a field type shared with the body models."""
    schema: Schema = TypeAdapter(annotation).json_schema()
    return schema


def path(name: str, description: str, schema: Schema | None = None) -> Param:
    return Param(name, "path", description, schema or dict(STRING), required=True)


def query(
    name: str, description: str, schema: Schema | None = None, *, required: bool = False
) -> Param:
    return Param(name, "query", description, schema or dict(STRING), required=required)


def page_size(maximum: int, default: int) -> Param:
    schema = {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}
    return query("limit", f"page size, 1 to {maximum}", schema)


@dataclass(frozen=True)
class Reply:
    """One documented response: a JSON `model` (or plain JSON `schema`), or a `media` string
    body (HTML, text; several types where the body's type varies), and the `headers` it sets
    (name -> description)."""

    description: str
    model: type[BaseModel] | None = None
    schema: Schema | None = None
    media: str | tuple[str, ...] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def json_reply(description: str, model: type[BaseModel]) -> Reply:
    return Reply(description, model=model)


def page(description: str) -> Reply:
    """An HTML page (what a tenant's browser sees)."""
    return Reply(description, media="text/html")


def redirect(description: str, **headers: str) -> Reply:
    return Reply(description, headers={"Location": "where the browser goes next", **headers})


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    tag: str
    answers: Mapping[int, Reply]
    errors: Mapping[int, str]
    """Failures by status, each saying its codes: they answer the shared error shape."""
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    """The JSON request model (from `json_body`)."""
    content: Mapping[str, Schema] | None = None
    """A request body that is not JSON (a form, a forwarded webhook), by media type."""
    store: bool = True
    """It reads or writes the store, so it answers 503 when the store is down."""
    description: str | None = None


_OPERATIONS: dict[Callable[..., Any], Operation] = {}
_BODIES: dict[Callable[..., Any], type[BaseModel]] = {}


class Operations:
    """The `operation` decorator of one route module: every operation it declares carries
    the module's tag unless told otherwise."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __call__(
        self,
        operation_id: str,
        summary: str,
        *,
        answers: Mapping[int, Reply],
        errors: Mapping[int, str] | None = None,
        params: tuple[Param, ...] = (),
        content: Mapping[str, Schema] | None = None,
        store: bool = True,
        description: str | None = None,
        tag: str | None = None,
    ) -> Callable[[H], H]:
        def declare(handler: H) -> H:
            body = _BODIES.get(handler)
            assert body is None or content is None, "one request body per operation"
            _OPERATIONS[handler] = Operation(
                operation_id=operation_id,
                summary=summary,
                tag=tag or self.tag,
                answers=answers,
                errors=errors or {},
                params=params,
                body=body,
                content=content,
                store=store,
                description=description,
            )
            return handler

        return declare


def json_body(
    model: type[M],
) -> Callable[[Callable[[web.Request, M], Awaitable[web.StreamResponse]]], Handler]:
    """The handler given its request body, read and validated with `model` (a 400
    `invalid_request` naming each problem otherwise)."""

    def wrap(handler: Callable[[web.Request, M], Awaitable[web.StreamResponse]]) -> Handler:
        @functools.wraps(handler)
        async def with_body(request: web.Request) -> web.StreamResponse:
            return await handler(request, await read_model(request, model))

        _BODIES[with_body] = model
        return with_body

    return wrap


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    """The operation declared for `handler`, looked up through the wrappers around it
    (`functools.wraps` chains them by `__wrapped__`)."""
    found: Callable[..., Any] | None = handler
    while found is not None:
        if found in _OPERATIONS:
            return _OPERATIONS[found]
        found = getattr(found, "__wrapped__", None)
    return None


def declared() -> list[Callable[..., Any]]:
    """Every handler an operation was declared for (imported route modules only)."""
    return list(_OPERATIONS)
