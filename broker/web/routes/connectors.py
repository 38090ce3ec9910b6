"""GET /v1/connectors: the loaded catalog, as an admin dashboard needs it."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from aiohttp import web
from pydantic import BaseModel, Field, WithJsonSchema

from broker.manifest import WEBHOOK_SCHEMES, AuthMode, Manifest, OAuthConfig
from broker.manifest.settings_schema import SECRET
from broker.web.openapi.spec import Operations, json_reply
from broker.web.state import CATALOG
from broker.web.wire import ConnectorKey

routes = web.RouteTableDef()
operation = Operations("connectors")


def _values_of(model: type[Manifest] | type[OAuthConfig], field: str) -> WithJsonSchema:
    # the manifest spells these Literals inline: take their values from the field
    return WithJsonSchema(
        {"type": "string", "enum": list(get_args(model.model_fields[field].annotation))}
    )


Kind = Annotated[str, _values_of(Manifest, "kind")]
OAuthType = Annotated[str, _values_of(OAuthConfig, "type")]


class RateLimit(BaseModel):
    requests: int
    per_seconds: float


class Connector(BaseModel):
    """A loaded connector."""

    key: ConnectorKey
    name: str
    provider: str
    kind: Kind
    version: str
    auth_mode: AuthMode
    oauth_type: OAuthType | None
    settings_schema: dict[str, Any] = Field(
        description=f"JSON Schema 2020-12 of the settings; `{SECRET}` marks secrets"
    )
    secrets: list[str] = Field(description="setting names the runtime may read")
    webhooks: WEBHOOK_SCHEMES | None
    http: list[str] = Field(
        description="permissions.http: the URL patterns provider calls may reach"
    )
    http_auth: dict[str, str] | None = Field(
        description="where the egress proxy puts an API-key connector's credential: `type` "
        "(bearer, basic, header, query) and the names of the settings and of the header or "
        "query parameter (never a value); null for OAuth, which sends its access token"
    )
    rate_limit: RateLimit | None = Field(
        description="the provider calls one connection may make per window, across replicas"
    )


class Connectors(BaseModel):
    connectors: list[Connector]


def describe(manifest: Manifest) -> dict[str, Any]:
    oauth, auth, limit = (
        manifest.connection.oauth,
        manifest.connection.http_auth,
        manifest.connection.rate_limit,
    )
    return {
        "key": manifest.key,
        "name": manifest.name,
        "provider": manifest.provider,
        "kind": manifest.kind,
        "version": manifest.version,
        "auth_mode": manifest.auth_mode,
        "oauth_type": oauth.type if oauth else None,
        "settings_schema": manifest.settings_schema,
        "secrets": sorted(manifest.granted_secrets),
        "webhooks": manifest.webhooks.auth if manifest.webhooks else None,
        "http": manifest.permissions.http,
        "http_auth": auth.model_dump(exclude_none=True) if auth else None,
        "rate_limit": (
            {"requests": limit.requests, "per_seconds": limit.per_seconds} if limit else None
        ),
    }


@routes.get("/v1/connectors")
@operation(
    "listConnectors",
    "The loaded connectors, by key",
    answers={200: json_reply("the catalog", Connectors)},
    store=False,
)
async def list_connectors(request: web.Request) -> web.Response:
    return web.json_response({"connectors": [describe(m) for m in request.app[CATALOG]]})
