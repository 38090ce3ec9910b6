"""The vocabulary the OpenAPI document (`broker.web.openapi`) is written in: schema and
response builders, the shared component schemas, and `Paths`, which applies to every
operation the rules the middleware applies to every route: /v1/runtime/* takes the `runtime`
bearer token and every other /v1/* path the `admin` one (401 without it); a request body can
be too large (413); an operation that touches the store answers 503 when the store is down.

Pure: no I/O and no web framework.
"""

from __future__ import annotations

from typing import Any, get_args

from broker.manifest import KEY_PATTERN, WEBHOOK_SCHEMES, AuthMode, Manifest, OAuthConfig
from broker.manifest.settings_schema import REDACTED, SECRET
from broker.services import events
from broker.services.records import CONNECTION_ID, TENANT_ID, ConnectionStatus
from broker.web.request_guard import BROWSER_PATHS, MAX_BODY_BYTES, is_admin_path, is_runtime_path

Schema = dict[str, Any]

EVENT_ID_PATTERN = f"^{events.EVENT_ID.pattern}$"
EVENT_TYPES = tuple(sorted(events.EVENT_TYPES))
STORE_DOWN = "`store_unavailable`: the store cannot be reached"


# --- schemas ---------------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(**keywords: Any) -> Schema:
    return {"type": "string", **keywords}


def nullable(kind: str, **keywords: Any) -> Schema:
    return {"type": [kind, "null"], **keywords}


def enum(values: tuple[str, ...] | list[str], *, null: bool = False) -> Schema:
    if null:
        return {"type": ["string", "null"], "enum": [*values, None]}
    return {"type": "string", "enum": list(values)}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with `required` and `optional` properties; others may be added later."""
    schema: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        schema["required"] = list(required)
    return schema


def closed(schema: Schema) -> Schema:
    """A request body that refuses unknown fields, as the handlers do."""
    return {**schema, "additionalProperties": False}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def literal_values(model: type[Manifest] | type[OAuthConfig], field: str) -> tuple[str, ...]:
    return get_args(model.model_fields[field].annotation)


INTEGER = {"type": "integer"}
OBJECT = {"type": "object"}
VERSION = {"type": "integer", "minimum": 1}
TIME = string(format="date-time", description="ISO-8601 UTC")
TIME_OR_NULL = nullable("string", format="date-time", description="ISO-8601 UTC")
TENANT_ID_SCHEMA = string(pattern=f"^{TENANT_ID.pattern}$", maxLength=128)
CONNECTION_ID_SCHEMA = string(pattern=f"^{CONNECTION_ID.pattern}$")
CONNECTOR_KEY = string(pattern=KEY_PATTERN, description="a connector key")


def connection_schema() -> Schema:
    refresh = obj(
        {
            "last_refresh_at": TIME_OR_NULL,
            "last_error": nullable("string", description="an error code"),
            "last_error_at": TIME_OR_NULL,
            "failures": {"type": "integer", "minimum": 0},
        }
    )
    oauth = obj(
        {
            "token_type": string(),
            "scopes": array(string()),
            "expires_at": TIME_OR_NULL,
            "has_refresh_token": {"type": "boolean"},
        }
    )
    return obj(
        {
            "id": CONNECTION_ID_SCHEMA,
            "tenant_id": TENANT_ID_SCHEMA,
            "connector": CONNECTOR_KEY,
            "status": enum(get_args(ConnectionStatus)),
            "auth_mode": enum(get_args(AuthMode), null=True),
            "settings": {**OBJECT, "description": f"secret values read `{REDACTED}`"},
            "settings_version": VERSION,
            "webhook_url": nullable("string", description="the manifest's webhook URL, filled"),
            "setup_instructions": nullable("string"),
            "created_at": TIME,
            "updated_at": TIME,
            "refresh": refresh,
        },
        {"oauth": oauth},
    )


def schemas() -> dict[str, Schema]:
    redacted = enum([REDACTED], null=True)
    settings_schema = f"JSON Schema 2020-12 of the settings; `{SECRET}` marks secrets"
    return {
        "Error": obj({"error": string(description="a stable error code"), "message": string()}),
        "WebhookRejection": obj(
            {"error": string(), "message": string()},
            {"valid": {"const": False, "description": "set when the verdict is on the delivery"}},
        ),
        "Connection": connection_schema(),
        "Connector": obj(
            {
                "key": CONNECTOR_KEY,
                "name": string(),
                "provider": string(),
                "kind": enum(literal_values(Manifest, "kind")),
                "version": string(),
                "auth_mode": enum(get_args(AuthMode)),
                "oauth_type": enum(literal_values(OAuthConfig, "type"), null=True),
                "settings_schema": {**OBJECT, "description": settings_schema},
                "secrets": array(string(description="a setting name the runtime may read")),
                "webhooks": enum(get_args(WEBHOOK_SCHEMES), null=True),
            }
        ),
        "OAuthApp": obj(
            {
                "credential_key": string(pattern=KEY_PATTERN),
                "tenant_id": nullable("string", description="null: the default registration"),
                "client_id": string(),
                "client_secret": redacted,
                "private_key": redacted,
                "key_id": nullable("string"),
                "updated_at": TIME,
            }
        ),
        "AccessToken": obj(
            {
                "access_token": string(),
                "token_type": string(),
                "expires_at": TIME_OR_NULL,
                "scopes": array(string()),
            }
        ),
        "SettingsVersion": obj(
            {
                "version": VERSION,
                "current": {"type": "boolean"},
                "created_at": TIME,
                "names": array(string(description="setting names, never values")),
            },
            {"replaced_at": TIME_OR_NULL},
        ),
        "AuditEntry": obj(
            {
                "at": TIME,
                "first_at": TIME,
                "count": {"type": "integer", "minimum": 1},
                "actor": string(description="`admin` or `runtime:<token id>`"),
                "action": string(),
                "tenant_id": TENANT_ID_SCHEMA,
                "connection_id": nullable("string"),
                "name": nullable(
                    "string",
                    description="a name, never a value; null on a `not_granted` `secret.read`: "
                    "the reads of ungranted names past the first 20 distinct ones that minute",
                ),
                "outcome": string(description="`ok` or an error code"),
            }
        ),
        "Event": obj(
            {
                "id": string(pattern=EVENT_ID_PATTERN),
                "type": enum(EVENT_TYPES),
                "created_at": string(format="date-time", description="ISO-8601 UTC, ms"),
                "tenant_id": nullable("string"),
                "connection_id": nullable("string"),
                "connector": nullable("string"),
                "data": {**OBJECT, "description": "names, statuses and error codes"},
            }
        ),
    }


SECURITY_SCHEMES = {
    "admin": {"type": "http", "scheme": "bearer", "description": "an admin token"},
    "runtime": {
        "type": "http",
        "scheme": "bearer",
        "description": "a runtime token from POST /v1/runtime-tokens",
    },
}


# --- parameters, bodies, responses ------------------------------------------------------------


def path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or string(),
    }


def query_param(
    name: str, description: str, schema: Schema | None = None, *, required: bool = False
) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or string(),
    }


def limit_param(bounds: dict[str, int]) -> Schema:
    text = f"page size, {bounds['minimum']} to {bounds['maximum']}"
    return query_param("limit", text, {"type": "integer", **bounds})


def json_body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def json_response(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def html_response(description: str) -> Schema:
    return {"description": description, "content": {"text/html": {"schema": string()}}}


def redirect(description: str, **headers: Schema) -> Schema:
    location = {"description": "where the browser goes next", "schema": string(format="uri")}
    return {"description": description, "headers": {"Location": location, **headers}}


def errors(by_status: dict[int, str], schema: str = "Error") -> dict[int, Schema]:
    """Responses in the shared `{"error", "message"}` shape, each described by its codes."""
    return {status: json_response(text, ref(schema)) for status, text in by_status.items()}


def page(key: str, item: Schema, next_description: str) -> Schema:
    """A page of `key` items and the cursor for the next one."""
    return obj({key: array(item), "next": nullable("string", description=next_description)})


def security_of(path: str) -> str | None:
    """The bearer scheme the middleware demands on `path` (it decides by path too)."""
    if is_runtime_path(path):
        return "runtime"
    return "admin" if is_admin_path(path) else None


class Paths:
    """The `paths` object, one operation at a time (tagged `tag` unless told otherwise)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.paths: dict[str, dict[str, Schema]] = {}

    def add(
        self,
        method: str,
        path: str,
        operation_id: str,
        summary: str,
        answers: dict[int, Schema],
        fails: dict[int, str] | None = None,
        *,
        store: bool = True,
        tag: str | None = None,
        description: str | None = None,
        parameters: list[Schema] | None = None,
        body: Schema | None = None,
    ) -> None:
        """`answers`: the responses as they are; `fails`: error responses by status."""
        op: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag or self.tag]}
        if description:
            op["description"] = description
        if parameters:
            op["parameters"] = parameters
        if body:
            op["requestBody"] = body
        implied: dict[int, str] = {}
        scheme = security_of(path)
        if scheme is not None:
            op["security"] = [{scheme: []}]
            implied[401] = f"`unauthorized`: missing, bad or expired {scheme} token"
        if body:
            implied[413] = f"`payload_too_large`: the body is over {MAX_BODY_BYTES} bytes"
        if store:
            implied[503] = STORE_DOWN
        failures = {**implied, **(fails or {})}
        if path.startswith(BROWSER_PATHS):  # the middleware answers a browser with pages
            failed = {
                status: html_response(f"{text} (an HTML page)") for status, text in failures.items()
            }
        else:
            failed = errors(failures)
        responses = {**failed, **answers}
        op["responses"] = {str(status): responses[status] for status in sorted(responses)}
        self.paths.setdefault(path, {})[method] = op
