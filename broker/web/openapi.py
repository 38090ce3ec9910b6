"""The OpenAPI 3.1 document of the broker's HTTP API (DESIGN section 7), built as plain data.

Pure: no I/O and no web framework, so it can be built, dumped and tested anywhere. The
operations follow the route modules one function each; the building blocks, shared schemas
and the rules every operation gets (security by path, 401, 413, 503) are in
`broker.web.openapi_parts`. `tests/web/test_openapi.py` keeps the document true to the code:
the documented (method, path) pairs equal the router's, security follows
`request_guard.is_admin_path`, bounds follow the route constants, and real responses validate
against the documented schemas.
"""

from __future__ import annotations

from typing import Any, get_args

from broker.manifest import WEBHOOK_SCHEMES
from broker.web.openapi_parts import (
    CONNECTION_ID_SCHEMA,
    CONNECTOR_KEY,
    EVENT_ID_PATTERN,
    INTEGER,
    OBJECT,
    SECURITY_SCHEMES,
    STORE_DOWN,
    TENANT_ID_SCHEMA,
    TIME,
    VERSION,
    Paths,
    Schema,
    array,
    closed,
    enum,
    errors,
    html_response,
    json_body,
    json_response,
    limit_param,
    nullable,
    obj,
    page,
    path_param,
    query_param,
    redirect,
    ref,
    schemas,
    string,
)
from broker.web.routes import events as events_route
from broker.web.routes import runtime as runtime_route

# Bounds the handlers enforce, taken from the handlers' own modules
RUNTIME_TOKEN_TTL = {
    "minimum": runtime_route.MIN_TTL,
    "maximum": runtime_route.MAX_TTL,
    "default": runtime_route.DEFAULT_TTL,
}
MIN_TTL_MAX = runtime_route.MAX_MIN_TTL
AUDIT_LIMIT = {
    "minimum": 1,
    "maximum": runtime_route.AUDIT_MAX_LIMIT,
    "default": runtime_route.AUDIT_DEFAULT_LIMIT,
}
EVENTS_LIMIT = {
    "minimum": 1,
    "maximum": events_route.MAX_LIMIT,
    "default": events_route.DEFAULT_LIMIT,
}


# --- the operations, by route module (/metrics and /openapi.json go with health) ----------


def health() -> Paths:
    api = Paths("health")
    keyring = obj(
        {"primary": string(), "keys": array(string()), "reload_error": nullable("string")}
    )
    ready = obj({"status": enum(["ready"]), "store": enum(["ok"]), "keyring": keyring})
    down = obj({"status": enum(["unavailable"]), "error": string(), "message": string()})
    api.add(
        "get",
        "/healthz",
        "healthz",
        "Liveness",
        {200: json_response("the process runs", obj({"status": enum(["ok"])}))},
        store=False,
    )
    api.add(
        "get",
        "/readyz",
        "readyz",
        "Readiness: the store is reachable, the keyring in use",
        {200: json_response("ready", ready), 503: json_response(f"not: {STORE_DOWN}", down)},
    )
    exposition = {"text/plain": {"schema": string()}}
    api.add(
        "get",
        "/metrics",
        "metrics",
        "Prometheus metrics",
        {200: {"description": "Prometheus text format 0.0.4", "content": exposition}},
        store=False,
    )
    api.add(
        "get",
        "/openapi.json",
        "openapi",
        "This OpenAPI 3.1 document",
        {200: json_response("the document", OBJECT)},
        store=False,
    )
    return api


def connectors() -> Paths:
    api = Paths("connectors")
    listing = obj({"connectors": array(ref("Connector"))})
    api.add(
        "get",
        "/v1/connectors",
        "listConnectors",
        "The loaded connectors, by key",
        {200: json_response("the catalog", listing)},
        store=False,
    )
    return api


def oauth_apps() -> Paths:
    api = Paths("oauth-apps")
    key = path_param("credential_key", "a manifest's `client.credentialKey`", CONNECTOR_KEY)
    secret = nullable("string", minLength=1, maxLength=16_384, writeOnly=True)
    app = closed(
        obj(
            {"client_id": string(minLength=1, maxLength=16_384)},
            {
                "client_secret": secret,
                "private_key": {**secret, "description": "PEM: RSA >= 2048 bits or EC P-256"},
                "key_id": nullable("string", minLength=1, maxLength=16_384),
                "tenant_id": {
                    **TENANT_ID_SCHEMA,
                    "type": ["string", "null"],
                    "description": "a per-tenant override (null: the default registration)",
                },
            },
        )
    )
    redacted = {200: json_response("the app, secrets redacted", ref("OAuthApp"))}
    path = "/v1/oauth-apps/{credential_key}"
    api.add(
        "put",
        path,
        "putOAuthApp",
        "Register or replace an OAuth app (secrets are write-only)",
        redacted,
        {
            400: "`invalid_request`: bad key, field or private key",
            409: "`version_conflict`: written concurrently; retry",
        },
        parameters=[key],
        body=json_body(app),
    )
    api.add(
        "get",
        path,
        "getOAuthApp",
        "Read an OAuth app",
        redacted,
        {
            400: "`invalid_request`: bad credential key or tenant_id",
            404: "`not_found`: no such app (for this tenant)",
        },
        parameters=[key, query_param("tenant_id", "the tenant's override", TENANT_ID_SCHEMA)],
    )
    return api


def connect() -> Paths:
    api = Paths("connect")
    session = obj(
        {
            "tenant_id": TENANT_ID_SCHEMA,
            "connector": CONNECTOR_KEY,
            "return_url": string(format="uri", maxLength=2048, description="an allowed origin"),
        },
        {
            "connection_id": nullable("string", description="reconnect this connection"),
            "settings": {**OBJECT, "description": "OAuth connectors only, non-secret"},
        },
    )
    link = obj({"token": string(), "connect_url": string(format="uri"), "expires_at": TIME})
    api.add(
        "post",
        "/v1/connect-sessions",
        "createConnectSession",
        "Create the one-time link a Connect button opens (30 minutes)",
        {201: json_response("the link", link)},
        {
            400: "`invalid_request`, `invalid_settings`: bad field, return_url or settings, "
            "or no OAuth app registered",
            404: "`not_found`: unknown connector or connection",
        },
        body=json_body(closed(session)),
    )
    token = path_param("token", "the connect session token", string(maxLength=128))
    dead_link = html_response("an unknown, used or expired link (an HTML page)")
    cookie = {"description": "binds the OAuth flow to this browser", "schema": string()}
    api.add(
        "get",
        "/connect/{token}",
        "openConnectLink",
        "Open a connect link (browser)",
        {
            200: html_response("API-key connector: the settings form"),
            302: redirect("OAuth connector: to the provider", **{"Set-Cookie": cookie}),
            404: dead_link,
        },
        {
            400: "`invalid_request`: no OAuth app registered, or the session's settings "
            "cannot fill the authorization URL",
        },
        parameters=[token],
    )
    form = {
        "application/x-www-form-urlencoded": {
            "schema": {**OBJECT, "additionalProperties": string()}
        }
    }
    api.add(
        "post",
        "/connect/{token}",
        "submitConnectForm",
        "Submit an API-key connector's settings form (browser)",
        {
            303: redirect("to return_url with status=connected&connection_id=..."),
            400: html_response(
                "the form again with the problems, an unreadable body, or an OAuth link"
            ),
            404: dead_link,
        },
        {
            409: "`session_in_use`: another tab is submitting this link; `version_conflict`: "
            "the connection changed while its settings were tested; retry",
            502: "`runtime_unavailable`: testConnection could not run",
        },
        description="A session made with `connection_id` changes that connection's settings "
        "(a new settings version, tested first; fields left empty keep their values) "
        "instead of creating one.",
        parameters=[token],
        body={"required": True, "content": form},
    )
    api.add(
        "get",
        "/oauth/callback/{connector}",
        "oauthCallback",
        "The provider's redirect back (browser)",
        {
            302: redirect(
                "to return_url with status=connected&connection_id=... or status=error&error=<code>"
            ),
            400: html_response(
                "`invalid_callback`: no, unknown, used or expired state, or another browser "
                "(an HTML page: there is no trusted return URL)"
            ),
        },
        {404: "`not_found`: the flow's connector is no longer loaded"},
        description="Needs the `broker_oauth_...` cookie set when the flow began.",
        parameters=[
            path_param("connector", "the connector key"),
            query_param("state", "the state the flow began with", required=True),
            query_param("code", "the authorization code"),
            query_param("error", "the provider's OAuth error"),
            query_param("error_description", "the provider's explanation"),
            query_param("iss", "the issuer (RFC 9207)"),
        ],
    )
    return api


def connections() -> Paths:
    api = Paths("connections")
    conn_id = path_param(
        "connection_id", "a connection id (other shapes: 404)", CONNECTION_ID_SCHEMA
    )
    one = {200: json_response("the connection, secrets redacted", ref("Connection"))}
    missing = "`not_found`: no such connection"
    refused = "`invalid_settings`, `connection_test_failed`: refused, nothing changed"
    tested = {
        404: missing,
        409: "`version_conflict`: it changed meanwhile; retry",
        502: "`runtime_unavailable`: testConnection could not run",
    }
    create = obj(
        {"tenant_id": TENANT_ID_SCHEMA, "connector": CONNECTOR_KEY},
        {"settings": {**OBJECT, "default": {}}},
    )
    api.add(
        "post",
        "/v1/connections",
        "createConnection",
        "Create an API-key (or OAuth client_credentials) connection",
        {201: json_response("validated, tested, sealed", ref("Connection"))},
        {
            400: f"`invalid_request`: bad field, or an authorization-code connector; {refused}",
            404: "`not_found`: unknown connector",
            409: "`version_conflict`: the tenant's index is too contended; retry",
            502: "`runtime_unavailable`, `provider_error`: testConnection or the token "
            "endpoint failed",
        },
        body=json_body(closed(create)),
    )
    listing = obj({"connections": array(ref("Connection"))})
    api.add(
        "get",
        "/v1/connections",
        "listConnections",
        "A tenant's connections",
        {200: json_response("secrets redacted", listing)},
        {400: "`invalid_request`: missing or bad tenant_id"},
        parameters=[query_param("tenant_id", "the tenant", TENANT_ID_SCHEMA, required=True)],
    )
    item = "/v1/connections/{connection_id}"
    api.add(
        "get", item, "getConnection", "Read a connection", one, {404: missing}, parameters=[conn_id]
    )
    revocation = obj(
        {"status": enum(["revoked", "not_supported", "failed"])},
        {"token_type_hint": enum(["refresh_token", "access_token"]), "error": string()},
    )
    deleted = obj(
        {"id": CONNECTION_ID_SCHEMA, "deleted": {"const": True}, "revocation": revocation}
    )
    force = enum(["true", "false"]) | {"default": "false"}
    api.add(
        "delete",
        item,
        "deleteConnection",
        "Revoke at the provider (where the manifest can), then delete",
        {200: json_response("deleted", deleted)},
        {
            400: "`invalid_request`: force is not true or false",
            404: missing,
            409: "`conflict`, `version_conflict`: busy; retry",
            502: "`revocation_failed`: the connection is kept (force=true drops it)",
        },
        parameters=[conn_id, query_param("force", "delete even if revocation fails", force)],
    )
    changes = {**OBJECT, "minProperties": 1, "description": "merged; `null` removes a setting"}
    api.add(
        "patch",
        f"{item}/settings",
        "changeSettings",
        "Change settings: merged, validated, tested, then a new current version",
        one,
        {400: f"`invalid_request`; {refused}", **tested},
        parameters=[conn_id],
        body=json_body(closed(obj({"settings": changes}))),
    )
    versions = obj({"versions": array(ref("SettingsVersion"))})
    api.add(
        "get",
        f"{item}/settings/versions",
        "listSettingsVersions",
        "Kept settings versions, newest first (names only, never values)",
        {200: json_response("the current version, then the kept ones", versions)},
        {404: missing},
        parameters=[conn_id],
    )
    api.add(
        "post",
        f"{item}/settings/rollback",
        "rollbackSettings",
        "Bring a kept settings version back, as a new version (tested)",
        one,
        {
            400: f"`invalid_request`: version is not an integer; {refused}",
            **tested,
            404: "`not_found`: no such connection, or the version is not kept",
        },
        parameters=[conn_id],
        body=json_body(closed(obj({"version": INTEGER}))),
    )
    return api


def runtime() -> Paths:
    api = Paths("runtime")
    minted = obj({"token": string(), "token_id": string(), "expires_at": TIME})
    mint = obj(
        {"connection_id": CONNECTION_ID_SCHEMA},
        {"ttl_seconds": {"type": "integer", **RUNTIME_TOKEN_TTL}},
    )
    api.add(
        "post",
        "/v1/runtime-tokens",
        "mintRuntimeToken",
        "Mint a runtime token scoped to one connection and its granted secrets",
        {201: json_response("the token", minted)},
        {
            400: "`invalid_request`: bad field or ttl_seconds",
            404: "`not_found`: no such connection",
        },
        body=json_body(closed(mint)),
    )
    entries = page("entries", ref("AuditEntry"), "pass as `before` for older entries")
    api.add(
        "get",
        "/v1/audit",
        "listAudit",
        "Who read or changed what (never a value), newest first",
        {200: json_response("a page", entries)},
        {400: "`invalid_request`: bad tenant_id, limit or before"},
        tag="audit",
        parameters=[
            query_param("tenant_id", "the tenant", TENANT_ID_SCHEMA, required=True),
            query_param("connection_id", "only this connection's entries"),
            limit_param(AUDIT_LIMIT),
            query_param("before", "the `next` cursor of an earlier page"),
        ],
    )
    secret = obj({"name": string(), "value": string(), "version": VERSION})
    api.add(
        "get",
        "/v1/runtime/secrets/{name}",
        "readSecret",
        "Read a granted setting (Secrets.get)",
        {200: json_response("non-string settings come as JSON text", secret)},
        {
            403: "`not_granted`: not in the manifest's permissions.secrets",
            404: "`not_found`: granted but not set",
        },
        parameters=[path_param("name", "the setting name")],
    )
    token = {200: json_response("valid for at least the margin (or min_ttl)", ref("AccessToken"))}
    not_oauth = "`not_oauth`: this connection does not use OAuth"
    refresh_errors = {
        400: not_oauth,
        409: "`needs_reauth`: the tenant must reconnect",
        502: "`provider_error`: the provider failed and no valid token is left",
        503: f"`refresh_timeout`: a refresh took too long; {STORE_DOWN}",
    }
    min_ttl = {"type": "number", "minimum": 0, "maximum": MIN_TTL_MAX}
    api.add(
        "get",
        "/v1/runtime/oauth/access-token",
        "getAccessToken",
        "The access token, refreshed if needed (OAuth.accessToken)",
        token,
        {**refresh_errors, 400: f"`invalid_request`: bad min_ttl; {not_oauth}"},
        parameters=[query_param("min_ttl", "seconds it must still live (not the margin)", min_ttl)],
    )
    api.add(
        "post",
        "/v1/runtime/oauth/refresh",
        "forceRefresh",
        "Refresh now (the provider said 401); within BROKER_FORCED_REFRESH_INTERVAL of the "
        "last forced call to the provider, the current token while it is valid",
        token,
        {
            **refresh_errors,
            429: "`rate_limited`: forced moments ago and expired since; retry after "
            "`Retry-After` seconds (or read the token, which refreshes it)",
        },
    )
    return api


def webhooks() -> Paths:
    api = Paths("webhooks")
    verified = obj(
        {
            "valid": {"const": True},
            "scheme": enum(get_args(WEBHOOK_SCHEMES)),
            "delivery_id": string(),
            "timestamp": nullable("integer", description="the signed send time, unix seconds"),
            "secret_index": {"type": "integer", "minimum": 0, "description": "0: the current"},
        }
    )
    verdicts = errors(
        {
            400: "`invalid_request` (no connection_id, no webhooks); with `valid: false`: "
            "`missing_header`, `malformed_header`, `unknown_scheme`, `webhook_secret_unset`",
            401: "`unauthorized` (the admin token); with `valid: false`: `invalid_signature`, "
            "`timestamp_out_of_tolerance`",
            409: "`replayed`, with `valid: false`: verified before",
        },
        "WebhookRejection",
    )
    raw = {"*/*": {"schema": string(contentMediaType="application/octet-stream")}}
    api.add(
        "post",
        "/v1/webhooks/verify",
        "verifyWebhook",
        "Verify a provider's webhook delivery, forwarded as it arrived",
        {200: json_response("authentic", verified), **verdicts},
        {
            404: "`not_found`: no such connection",
            500: "`unusable_webhook_secret`: the configured secret cannot sign",
        },
        description=(
            "The body is the provider's raw body; its signature headers go as sent (e.g. "
            "Stripe-Signature, X-Hub-Signature-256, X-Shopify-Hmac-Sha256, X-Slack-Signature "
            "with X-Slack-Request-Timestamp, webhook-id/-timestamp/-signature or svix-*)."
        ),
        parameters=[query_param("connection_id", "the connection", required=True)],
        body={"required": True, "content": raw},
    )
    return api


def events() -> Paths:
    api = Paths("events")
    listing = page("events", ref("Event"), "pass as `after` for the next page")
    api.add(
        "get",
        "/v1/events",
        "listEvents",
        "Connection events in order (the newest held back briefly)",
        {200: json_response("a page; an empty one keeps the cursor", listing)},
        {400: "`invalid_request`: bad after or limit"},
        parameters=[
            query_param("after", "the `next` of an earlier page", string(pattern=EVENT_ID_PATTERN)),
            limit_param(EVENTS_LIMIT),
        ],
    )
    return api


def create_document(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Schema]] = {}
    for part in (health, connectors, oauth_apps, connect, connections, runtime, webhooks, events):
        for path, operations in part().paths.items():
            paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "broker",
            "version": version,
            "summary": "An async OAuth-and-credentials broker for connector platforms",
            "description": (
                'JSON everywhere; every error is `{"error": "<code>", "message": "..."}`. '
                "Times are ISO-8601 UTC. Admin routes take the admin bearer token, "
                "/v1/runtime/ routes a runtime token."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas(), "securitySchemes": SECURITY_SCHEMES},
    }
