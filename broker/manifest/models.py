"""The manifest models: the structure of a deployment manifest, checked by pydantic.

A manifest is the JSON that `defineConnector({...})` builds (camelCase keys). Shapes are ours,
so unknown keys are refused. The rules that span blocks are `broker.manifest.checks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
WEBHOOK_SCHEMES = Literal[
    "stripe_signature", "github_hmac_sha256", "shopify_hmac_sha256", "slack_v0", "standard_webhooks"
]
AuthMode = Literal["oauth", "api_key"]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Permissions(_Model):
    http: list[str] = []
    entities: dict[str, list[Literal["read", "write"]]] = {}
    secrets: dict[str, list[Literal["read"]]] = {}


class TestConnection(_Model):
    __test__ = False  # not a pytest class
    route: str = Field(pattern=r"^/[^\s?#]*$")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"


class Setup(_Model):
    webhook_url_template: str | None = None
    instructions: str | None = None


class OAuthClient(_Model):
    credential_key: str = Field(pattern=KEY_PATTERN)


class OAuthConfig(_Model):
    type: Literal["authorization_code", "client_credentials"] = "authorization_code"
    authorization_url_template: str | None = None
    token_url_template: str
    revocation_url_template: str | None = None
    scopes: list[str] = []
    scope_separator: str = " "
    client: OAuthClient
    pkce: bool = True
    token_auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] = (
        "client_secret_basic"
    )
    authorization_params: dict[str, str] = {}
    token_params: dict[str, str] = {}
    issuer: str | None = None
    default_expires_in: int | None = Field(default=None, gt=0)
    token_request_encoding: Literal["form", "json"] = "form"
    rotates_refresh_tokens: bool = False
    """A refresh answers a new refresh token to use from then on; how long the one sent still
    works is `refresh_token_reuse_seconds`. False: the same refresh token serves every time."""
    refresh_token_reuse_seconds: int | None = Field(default=None, ge=0)
    """How long the provider still accepts a spent refresh token (a lost answer can be
    retried); 0 or unset: reuse revokes the grant, or is not documented."""
    refresh_token_inactivity_seconds: int | None = Field(default=None, ge=0)
    """A refresh token unused this long dies: the idle keep-alive uses it (0 or unset: none
    documented, the global `BROKER_IDLE_REFRESH_INTERVAL` applies)."""
    bearer_token_types: list[str] = []
    """Other `token_type` values the provider uses for bearer tokens (Slack: "bot")."""

    def templates(self) -> Iterator[tuple[str, str]]:
        """(field alias, template) for every URL template that is set."""
        for name in ("authorization_url_template", "token_url_template", "revocation_url_template"):
            value = getattr(self, name)
            if value is not None:
                yield to_camel(name), value


class BearerAuth(_Model):
    """`Authorization: Bearer <secret>`."""

    type: Literal["bearer"]
    secret: str = Field(min_length=1)


class BasicAuth(_Model):
    """`Authorization: Basic base64(<username>:<password>)`; an omitted part is empty."""

    type: Literal["basic"]
    username: str | None = Field(default=None, min_length=1)
    password: str | None = Field(default=None, min_length=1)


class HeaderAuth(_Model):
    """`<name>: <secret>` (Postmark's `X-Postmark-Server-Token`, Brevo's `api-key`)."""

    type: Literal["header"]
    name: str = Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")  # an RFC 9110 token
    secret: str = Field(min_length=1)


class QueryAuth(_Model):
    """`?<name>=<secret>` appended to the provider URL."""

    type: Literal["query"]
    name: str = Field(pattern=r"^[A-Za-z0-9._~-]{1,64}$")  # unreserved: no encoding needed
    secret: str = Field(min_length=1)


HttpAuth = Annotated[BearerAuth | BasicAuth | HeaderAuth | QueryAuth, Field(discriminator="type")]
"""Where an API-key connector's credential goes on a provider call through the egress proxy
(OAuth connectors inject their bearer access token instead)."""


class RateLimit(_Model):
    """At most `requests` provider calls per `per_seconds`, per connection, across replicas."""

    requests: int = Field(gt=0)
    per_seconds: float = Field(gt=0)


class Connection(_Model):
    test_connection: TestConnection | None = None
    setup: Setup | None = None
    settings_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    oauth: OAuthConfig | None = None
    http_auth: HttpAuth | None = None
    rate_limit: RateLimit | None = None


class Webhooks(_Model):
    endpoint: str = Field(pattern=r"^/[^\s?#]*$")
    auth: WEBHOOK_SCHEMES
    secret: str = "webhook_secret"


class Stream(_Model):
    key: str = Field(pattern=KEY_PATTERN)
    mode: Literal["poll", "webhook"]
    schedule: str | None = None


class LineField(_Model):
    entity: str
    line_collection: str
    key: str = Field(pattern=KEY_PATTERN)
    label: str
    type: Literal[
        "string", "select", "currency", "number", "integer", "boolean", "date", "datetime"
    ]
    options: list[str] | None = None
    currency_field: str | None = None


class VisibleWhen(_Model):
    field: str
    equals: Any


class LineColumn(_Model):
    id: str
    label: str
    entity: str
    line_collection: str
    field: str
    width: int | None = Field(default=None, gt=0)
    order: int | None = None
    visible_when: VisibleWhen | None = None


class UI(_Model):
    line_columns: list[LineColumn] = []


class Manifest(_Model):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    kind: Literal["source", "destination"]
    version: str = Field(pattern=r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
    description: str | None = None
    permissions: Permissions = Permissions()
    connection: Connection
    webhooks: Webhooks | None = None
    streams: list[Stream] = []
    ui: UI | None = None
    fields: list[LineField] = []

    @property
    def oauth(self) -> OAuthConfig | None:
        """The OAuth configuration; None for an API-key connector. The one way to ask which
        kind a connector is (`auth_mode` is the answer's name on the wire)."""
        return self.connection.oauth

    @property
    def auth_mode(self) -> AuthMode:
        return "oauth" if self.oauth is not None else "api_key"

    @property
    def settings_schema(self) -> dict[str, Any]:
        return self.connection.settings_schema

    @property
    def granted_secrets(self) -> frozenset[str]:
        return frozenset(self.permissions.secrets)
