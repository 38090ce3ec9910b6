"""Admin routes for OAuth app registrations (secrets are write-only)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field, WithJsonSchema

from broker.manifest import KEY_PATTERN
from broker.manifest.settings_schema import REDACTED
from broker.services import oauth_apps
from broker.services.records import OAuthApp
from broker.web.openapi.spec import Operations, json_body, json_reply, path, query, schema_of
from broker.web.state import CONTEXT
from broker.web.wire import RequestBody, TenantId, Time, iso

routes = web.RouteTableDef()
operation = Operations("oauth-apps")

Text = Annotated[str, Field(min_length=1, max_length=16_384)]
Secret = Annotated[Text, Field(json_schema_extra={"writeOnly": True})]
Redacted = Annotated[str, WithJsonSchema({"type": "string", "enum": [REDACTED]})]


class OAuthAppRegistration(RequestBody):
    client_id: Text
    client_secret: Secret | None = None
    private_key: Secret | None = Field(None, description="PEM: RSA >= 2048 bits or EC P-256")
    key_id: Text | None = None
    tenant_id: TenantId | None = Field(
        None, description="a per-tenant override (null: the default registration)"
    )


class OAuthAppView(BaseModel, title="OAuthApp"):
    """An OAuth app registration, secrets redacted."""

    credential_key: str = Field(pattern=KEY_PATTERN)
    tenant_id: str | None = Field(description="null: the default registration")
    client_id: str
    client_secret: Redacted | None
    private_key: Redacted | None
    key_id: str | None
    updated_at: Time


CREDENTIAL_KEY = path(
    "credential_key",
    "a manifest's `client.credentialKey`",
    {"type": "string", "pattern": KEY_PATTERN, "description": "a connector key"},
)
REDACTED_APP = {200: json_reply("the app, secrets redacted", OAuthAppView)}


def _view(app: OAuthApp) -> dict[str, object]:
    view = oauth_apps.redacted(app)
    view["updated_at"] = iso(app.updated_at)
    return view


@routes.put("/v1/oauth-apps/{credential_key}")
@operation(
    "putOAuthApp",
    "Register or replace an OAuth app (secrets are write-only)",
    params=(CREDENTIAL_KEY,),
    answers=REDACTED_APP,
    errors={
        400: "`invalid_request`: bad key, field or private key",
        409: "`version_conflict`: written concurrently; retry",
    },
)
@json_body(OAuthAppRegistration)
async def put_oauth_app(request: web.Request, body: OAuthAppRegistration) -> web.Response:
    ctx = request.app[CONTEXT]
    app = await oauth_apps.put(
        ctx, request.match_info["credential_key"], body.model_dump(exclude_unset=True)
    )
    return web.json_response(_view(app))


@routes.get("/v1/oauth-apps/{credential_key}")
@operation(
    "getOAuthApp",
    "Read an OAuth app",
    params=(CREDENTIAL_KEY, query("tenant_id", "the tenant's override", schema_of(TenantId))),
    answers=REDACTED_APP,
    errors={
        400: "`invalid_request`: bad credential key or tenant_id",
        404: "`not_found`: no such app (for this tenant)",
    },
)
async def get_oauth_app(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    tenant_id = request.query.get("tenant_id")
    app = await oauth_apps.get(ctx, request.match_info["credential_key"], tenant_id)
    return web.json_response(_view(app))
