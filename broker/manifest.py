"""Deployment manifests: the models, their cross-checks, and URL-template filling.

A manifest is the JSON that `defineConnector({...})` builds (camelCase keys). Shapes are ours,
so unknown keys are refused. `load_manifest` reports every problem with its JSON path, in two
passes: the structure (pydantic), then the rules that span blocks (`broker.manifest_checks`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from broker import settings_schema
from broker.errors import ManifestError, Problem

KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
BUILTIN_PLACEHOLDERS = frozenset({"tenant_id", "connection_id"})
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
    bearer_token_types: list[str] = []
    """Other `token_type` values the provider uses for bearer tokens (Slack: "bot")."""

    def templates(self) -> Iterator[tuple[str, str]]:
        """(field alias, template) for every URL template that is set."""
        for name in ("authorization_url_template", "token_url_template", "revocation_url_template"):
            value = getattr(self, name)
            if value is not None:
                yield to_camel(name), value


class Connection(_Model):
    test_connection: TestConnection | None = None
    setup: Setup | None = None
    settings_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    oauth: OAuthConfig | None = None


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
    def auth_mode(self) -> AuthMode:
        return "oauth" if self.connection.oauth is not None else "api_key"

    @property
    def settings_schema(self) -> dict[str, Any]:
        return self.connection.settings_schema

    @property
    def granted_secrets(self) -> frozenset[str]:
        return frozenset(self.permissions.secrets)


def fill_template(
    template: str,
    manifest: Manifest,
    *,
    tenant_id: str,
    connection_id: str = "",
    settings: Mapping[str, Any],
) -> str:
    """Fill `<name>` placeholders. A setting's value must fully match its schema `pattern`
    (checked again here, not only at validation time) and is percent-encoded."""
    properties = manifest.settings_schema.get("properties", {})

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "tenant_id":
            return quote(tenant_id, safe="")
        if name == "connection_id":
            return quote(connection_id, safe="")
        raw = settings.get(name)
        pattern = properties.get(name, {}).get("pattern")
        if not isinstance(raw, str) or not pattern or not re.fullmatch(pattern, raw):
            raise ManifestError(
                [Problem(f"$.settings.{name}", "missing or does not match its pattern")]
            )
        return quote(raw, safe="")

    return PLACEHOLDER.sub(value, template)


def load_manifest(path: Path | str) -> Manifest:
    """Read and validate one manifest file; `ManifestError` names the file and every problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(
            [Problem("$", f"cannot read: {exc.__class__.__name__}")], str(path)
        ) from exc
    except json.JSONDecodeError as exc:
        problem = Problem("$", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        raise ManifestError([problem], str(path)) from exc
    manifest = validate_manifest(data, source=str(path))
    if path.name == "manifest.json" and path.parent.name != manifest.key:
        problem = Problem(
            "$.key", f"key {manifest.key!r} does not match its folder {path.parent.name!r}"
        )
        raise ManifestError([problem], str(path))
    return manifest


def validate_manifest(data: Any, source: str = "") -> Manifest:
    problems: list[Problem] = []
    manifest: Manifest | None = None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    schema = data.get("connection", {}).get("settingsSchema") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("connection"), dict) and schema is not None:
        problems.extend(settings_schema.check_schema(schema, "$.connection.settingsSchema"))
    if manifest is not None and not problems:
        from broker.manifest_checks import cross_check  # the checks build on these models

        problems.extend(cross_check(manifest))
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)), source)
    assert manifest is not None
    return manifest


_PATTERN_HINTS = {
    "key": "must be lowercase letters, digits, '_' or '-', starting with a letter (at most 64)",
    "version": "must be a semantic version like 1.2.3",
}


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "string_pattern_mismatch" and str(err["loc"][-1]) in _PATTERN_HINTS:
            message = _PATTERN_HINTS[str(err["loc"][-1])]
        out.append(Problem(settings_schema.json_path(err["loc"]), message))
    return out
