"""GET /openapi.json: a valid OpenAPI 3.1 document, generated from the router and the
operations declared beside the handlers, that cannot drift from the routes, their security,
their bounds, or the bodies they really take and answer."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from broker.config import Settings
from broker.web import request_guard
from broker.web.app import create_app
from broker.web.openapi import spec
from broker.web.openapi.document import create_document
from broker.web.request_guard import is_admin_path
from broker.web.routes import events as events_route
from broker.web.routes import runtime as runtime_route
from broker.web.state import SETTINGS
from tests.helpers import admin

Client = TestClient[Any, Any]
Document = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ERROR_REF = "#/components/schemas/Error"
NO_CLIENT_ERRORS = {"/healthz", "/readyz", "/metrics", "/openapi.json"}
DOC_URI = "urn:broker:openapi"


@pytest.fixture
async def eager(make_settings: Callable[..., Settings]) -> AsyncIterator[Client]:
    """A broker whose event log shows events at once (no pull delay, no delivery worker)."""
    settings = make_settings(events_pull_delay=0, events_worker=False)
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def served(client: Client) -> Document:
    resp = await client.get("/openapi.json")  # no Authorization header
    assert resp.status == 200
    assert resp.content_type == "application/json"
    document: Document = await resp.json()
    return document


def operations(document: Document) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def closed(schema: Any) -> Any:
    """`schema` with every object that lists its properties closed to others, so a field
    the handler answers but the document does not name fails validation."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def check_body(document: Document, method: str, path: str, status: int, body: Any) -> None:
    """Validate a real response body against the documented schema for that status."""
    response = document["paths"][path][method.lower()]["responses"][str(status)]
    assert "application/json" in response["content"], (method, path, status)
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(closed(document), default_specification=DRAFT202012)
    )
    where = pointer(
        "paths", path, method.lower(), "responses", str(status), "content", "application/json"
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{DOC_URI}{where}/schema"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    validator.validate(body)


async def test_the_document_is_valid_openapi_3_1(client: Client) -> None:
    document = await served(client)
    assert document["openapi"].startswith("3.1.")
    validate(document)
    assert document["info"]["version"] == importlib.metadata.version("broker")


def routed(client: Client) -> list[Any]:
    return [
        route
        for route in client.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.name != request_guard.UNMATCHED  # answers 404/405 only
    ]


async def test_every_route_declares_an_operation_and_every_operation_is_routed(
    client: Client,
) -> None:
    handlers = {route.handler: route for route in routed(client)}
    for handler, route in handlers.items():
        assert spec.operation_of(handler) is not None, (route.method, route.resource.canonical)
    routed_operations = {id(spec.operation_of(handler)) for handler in handlers}
    for handler in spec.declared():
        assert id(spec.operation_of(handler)) in routed_operations, handler.__qualname__


async def test_only_a_json_body_adds_work_per_request(client: Client) -> None:
    """Declaring an operation wraps nothing: the guard calls the runtime reads' handlers
    directly; only `json_body` adds a layer (reading and validating the body), and on the
    browser's paths `pages.with_pages` (failures as styled pages)."""
    for route in routed(client):
        operation = spec.operation_of(route.handler)
        assert operation is not None
        layers = 0
        handler = route.handler
        while hasattr(handler, "__wrapped__"):
            handler, layers = handler.__wrapped__, layers + 1
        path = route.resource.canonical
        expected = 1 + (operation.body is not None) + path.startswith(request_guard.BROWSER_PATHS)
        assert layers == expected, path


async def test_every_route_is_documented_and_nothing_else(client: Client) -> None:
    document = await served(client)
    registered = {(route.method, route.resource.canonical) for route in routed(client)}
    documented = {(method, path) for method, path, _ in operations(document)}
    assert registered == documented
    assert ("GET", "/metrics") in documented
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))


def test_a_route_without_an_operation_is_refused() -> None:
    async def undeclared(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/nowhere", undeclared)
    with pytest.raises(LookupError, match="GET /nowhere declares no operation"):
        create_document(app.router, "0")


async def test_security_follows_the_middleware(client: Client) -> None:
    document = await served(client)
    schemes = document["components"]["securitySchemes"]
    assert schemes["admin"] == schemes["admin"] | {"type": "http", "scheme": "bearer"}
    assert schemes["runtime"] == schemes["runtime"] | {"type": "http", "scheme": "bearer"}
    assert "security" not in document  # nothing applies globally
    for method, path, op in operations(document):
        expected: list[dict[str, list[str]]]
        if path.startswith("/v1/runtime/"):
            expected = [{"runtime": []}]
        elif is_admin_path(path):
            expected = [{"admin": []}]
        else:
            expected = []
        assert op.get("security", []) == expected, (method, path)
        if expected:
            assert "401" in op["responses"], (method, path)


async def test_every_fallible_operation_documents_a_json_client_error(client: Client) -> None:
    """Browser routes answer errors with pages (the middleware decides by path), the rest
    with the shared JSON Error."""
    document = await served(client)
    for method, path, op in operations(document):
        assert op["summary"], (method, path)
        client_errors = {
            status: response.get("content", {})
            for status, response in op["responses"].items()
            if status.startswith("4")
        }
        if path in NO_CLIENT_ERRORS:
            assert not client_errors, (method, path)
            continue
        assert client_errors, (method, path)
        for status, content in client_errors.items():
            if path.startswith(request_guard.BROWSER_PATHS):
                assert list(content) == ["text/html"], (method, path, status)
            elif path != "/v1/webhooks/verify":  # its 400 and 401 also say `valid: false`
                assert content["application/json"]["schema"] == {"$ref": ERROR_REF}


async def test_every_json_body_refuses_what_its_schema_refuses(client: Client) -> None:
    """The documented request model is the one that validates: an unknown field, or a value
    of the wrong JSON type, is a 400 naming the field and never quoting the value."""
    document = await served(client)
    schemas = document["components"]["schemas"]
    canary = "sk_live_CANARY_never_echoed"
    checked = 0
    for method, path, op in operations(document):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        name = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        schema = schemas[name]
        assert schema["additionalProperties"] is False, name
        url = re.sub(r"\{[^}]+\}", "x", path)
        resp = await client.request(method, url, json={"nope": canary}, headers=admin())
        body = await resp.json()
        assert resp.status == 400 and body["error"] == "invalid_request", (path, body)
        assert "unknown field(s): nope" in body["message"] and canary not in body["message"]
        for field in schema.get("required", []):
            assert f"{field} is required" in body["message"], (path, body)
        checked += 1
    assert checked == 6


async def test_a_browser_route_answers_a_page_where_an_api_route_answers_json(
    client: Client,
) -> None:
    big = b"x" * (client.app[SETTINGS].max_body_bytes + 1)
    page = await client.post("/connect/some-token", data=big)
    assert page.status == 413 and page.content_type == "text/html"
    assert "payload_too_large" in await page.text()
    api = await client.post("/v1/connections", data=big, headers=admin())
    assert api.status == 413 and (await api.json())["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("path", "name", "low", "high"),
    [
        ("/v1/audit?tenant_id=t1", "limit", 1, runtime_route.AUDIT_MAX_LIMIT),
        ("/v1/events", "limit", 1, events_route.MAX_LIMIT),
    ],
)
async def test_documented_bounds_are_the_ones_enforced(
    client: Client, path: str, name: str, low: int, high: int
) -> None:
    document = await served(client)
    route = path.split("?")[0]
    (param,) = [p for p in document["paths"][route]["get"]["parameters"] if p["name"] == name]
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (low, high)
    separator = "&" if "?" in path else "?"
    for value, status in ((low, 200), (high, 200), (low - 1, 400), (high + 1, 400)):
        resp = await client.get(f"{path}{separator}{name}={value}", headers=admin())
        assert resp.status == status, (path, value)


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        # found by the contract fuzzer: an empty cursor is read as "from the start"
        ("/v1/events", "after", ""),
        ("/v1/events", "after", "nope"),
        ("/v1/events", "after", "evt_1700000000000" + "0a" * 8),
    ],
)
async def test_a_query_value_is_taken_exactly_when_the_document_allows_it(
    client: Client, path: str, name: str, value: str
) -> None:
    document = await served(client)
    (param,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    allowed = jsonschema.Draft202012Validator(param["schema"]).is_valid(value)
    resp = await client.get(path, params={name: value}, headers=admin())
    assert resp.status in (200, 400), await resp.text()
    assert (resp.status == 200) == allowed, (name, value, resp.status)


def test_no_example_values(make_settings: Callable[..., Settings]) -> None:
    # the document carries shapes, never sample tokens or secrets
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert not {"example", "examples"} & set(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(create_document(create_app(make_settings()).router, "0"))


async def test_documented_schemas_match_real_responses(eager: Client) -> None:
    client = eager
    document = await served(client)

    async def call(
        method: str, path: str, status: int, template: str | None = None, **kwargs: Any
    ) -> Any:
        """Call the broker, expect `status`, check the body against the document."""
        resp = await client.request(method, path, **kwargs)
        assert resp.status == status, (method, path, await resp.text())
        body = await resp.json()
        check_body(document, method, template or path.split("?")[0], status, body)
        return body

    await call("GET", "/healthz", 200)
    await call("GET", "/readyz", 200)
    assert (await call("GET", "/v1/connectors", 200, headers=admin()))["connectors"]
    await call("GET", "/v1/connectors", 401)
    await call("GET", "/v1/connections", 400, headers=admin())
    await call("GET", "/v1/events?limit=0", 400, headers=admin())

    app_path = "/v1/oauth-apps/{credential_key}"
    oauth_app = {"client_id": "test-client-id", "client_secret": "test-not-a-secret"}
    await call("PUT", "/v1/oauth-apps/github", 200, app_path, headers=admin(), json=oauth_app)
    await call("GET", "/v1/oauth-apps/github", 200, app_path, headers=admin())
    await call("GET", "/v1/oauth-apps/github?tenant_id=t", 404, app_path, headers=admin())

    session = {
        "tenant_id": "tenant-a",
        "connector": "stripe",
        "return_url": "http://127.0.0.1:8080/done",
    }
    await call("POST", "/v1/connect-sessions", 201, headers=admin(), json=session)

    settings = {"api_key": "test-key-not-real", "webhook_secret": "test-secret-not-real"}
    body = {"tenant_id": "tenant-a", "connector": "stripe", "settings": settings}
    conn = (await call("POST", "/v1/connections", 201, headers=admin(), json=body))["id"]
    await call("GET", "/v1/connections?tenant_id=tenant-a", 200, headers=admin())
    item = "/v1/connections/{connection_id}"
    change = {"settings": {"api_key": "test-key-not-real-2"}}
    await call(
        "PATCH",
        f"/v1/connections/{conn}/settings",
        200,
        item + "/settings",
        headers=admin(),
        json=change,
    )
    versions = await call(
        "GET",
        f"/v1/connections/{conn}/settings/versions",
        200,
        item + "/settings/versions",
        headers=admin(),
    )
    assert len(versions["versions"]) == 2

    minted = await call(
        "POST", "/v1/runtime-tokens", 201, headers=admin(), json={"connection_id": conn}
    )
    runtime = {"Authorization": f"Bearer {minted['token']}"}
    secret = "/v1/runtime/secrets/{name}"
    await call("GET", "/v1/runtime/secrets/api_key", 200, secret, headers=runtime)
    await call("GET", "/v1/runtime/secrets/other", 403, secret, headers=runtime)
    await call("GET", "/v1/runtime/oauth/access-token", 400, headers=runtime)
    # the documented min_ttl bounds are the hand-checked ones (a runtime read has no model)
    token_path = "/v1/runtime/oauth/access-token"
    (min_ttl,) = document["paths"][token_path]["get"]["parameters"]
    low, high = min_ttl["schema"]["minimum"], min_ttl["schema"]["maximum"]
    assert (low, high) == (0, runtime_route.MAX_MIN_TTL)
    for value, code in ((low, "not_oauth"), (high, "not_oauth"), (low - 1, "invalid_request")):
        refused = await call("GET", f"{token_path}?min_ttl={value}", 400, headers=runtime)
        assert refused["error"] == code, value
    over = await call("GET", f"{token_path}?min_ttl={high + 1}", 400, headers=runtime)
    assert over["error"] == "invalid_request"

    verify = f"/v1/webhooks/verify?connection_id={conn}"
    rejection = await call("POST", verify, 400, headers=admin(), data=b"{}")
    assert rejection["valid"] is False

    audit = await call("GET", "/v1/audit?tenant_id=tenant-a", 200, headers=admin())
    assert audit["entries"]
    assert (await call("GET", "/v1/events", 200, headers=admin()))["events"]

    await call("DELETE", f"/v1/connections/{conn}", 200, item, headers=admin())
    await call("GET", f"/v1/connections/{conn}", 404, item, headers=admin())
