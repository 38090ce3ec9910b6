"""Deployment manifests: the models, their cross-checks, and URL-template filling.

A manifest is the JSON that `defineConnector({...})` builds (camelCase keys). Shapes are ours,
so unknown keys are refused. `load_manifest` reports every problem with its JSON path, in two
passes: the structure (pydantic), then the rules that span blocks (`_cross_check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from broker import settings_schema
from broker.cron import cron_problem
from broker.errors import ManifestError, Problem

KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
BUILTIN_PLACEHOLDERS = frozenset({"tenant_id", "connection_id"})
WEBHOOK_SCHEMES = Literal[
    "stripe_signature", "github_hmac_sha256", "shopify_hmac_sha256", "slack_v0", "standard_webhooks"
]
AuthMode = Literal["oauth", "api_key"]

# Parameters the broker itself sets; a manifest overriding them would break the protocol or
# its security (state, PKCE, redirect_uri), so they are refused.
_RESERVED_AUTHORIZE = {
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
}
_RESERVED_TOKEN = {
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "client_assertion",
    "client_assertion_type",
}
_TOKEN_SETTINGS = {"access_token", "refresh_token", "id_token"}
# A value filled into a URL must not be able to end the host or path segment it sits in.
_URL_BREAKERS = ("a/b", "a?b", "a#b", "a@b", "a:b", "a\\b", "a%2Fb", "a b", "a\nb", "..")


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
        problems.extend(_cross_check(manifest))
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


def _cross_check(m: Manifest) -> list[Problem]:
    return [
        *_check_permissions(m),
        *_check_connection(m),
        *_check_webhooks(m),
        *_check_streams(m),
        *_check_fields(m),
    ]


def _check_permissions(m: Manifest) -> list[Problem]:
    problems = [
        Problem(f"$.permissions.http[{i}]", "must be an https:// URL pattern")
        for i, pattern in enumerate(m.permissions.http)
        if not _allowed_url(pattern.replace("*", "x"))
    ]
    declared = settings_schema.declared(m.settings_schema)
    problems += [
        Problem(
            f"$.permissions.secrets.{name}",
            f"grants {name!r}, which settingsSchema does not declare",
        )
        for name in m.permissions.secrets
        if name not in declared
    ]
    return problems


def _check_connection(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    schema = m.settings_schema
    secrets = settings_schema.secret_names(schema)
    setup = m.connection.setup
    if setup and setup.webhook_url_template is not None:
        problems += _check_template(
            m, "$.connection.setup.webhookUrlTemplate", setup.webhook_url_template, relative_ok=True
        )
    oauth = m.connection.oauth
    if oauth is None:
        if not secrets:
            problems.append(
                Problem(
                    "$.connection",
                    "declares no credentials: add connection.oauth or an x-secret setting",
                )
            )
        return problems
    where = "$.connection.oauth"
    if oauth.type == "authorization_code" and oauth.authorization_url_template is None:
        problems.append(
            Problem(f"{where}.authorizationUrlTemplate", "required for type authorization_code")
        )
    if oauth.type == "client_credentials" and oauth.authorization_url_template is not None:
        problems.append(
            Problem(
                f"{where}.authorizationUrlTemplate", "client_credentials has no authorization step"
            )
        )
    for alias, template in oauth.templates():
        problems += _check_template(m, f"{where}.{alias}", template)
    if oauth.issuer is not None and not _allowed_url(oauth.issuer):
        problems.append(Problem(f"{where}.issuer", "must be an https:// URL"))
    if not oauth.scope_separator:
        problems.append(Problem(f"{where}.scopeSeparator", "must not be empty"))
    for i, scope in enumerate(oauth.scopes):
        if (
            not scope
            or scope.strip() != scope
            or (oauth.scope_separator and oauth.scope_separator in scope)
        ):
            problems.append(
                Problem(f"{where}.scopes[{i}]", "empty, padded, or contains the scope separator")
            )
    for block, reserved in (
        ("authorizationParams", _RESERVED_AUTHORIZE),
        ("tokenParams", _RESERVED_TOKEN),
    ):
        params = (
            oauth.authorization_params if block == "authorizationParams" else oauth.token_params
        )
        problems += [
            Problem(f"{where}.{block}.{name}", "is set by the broker and cannot be overridden")
            for name in params
            if name in reserved
        ]
    problems += [
        Problem(
            f"$.connection.settingsSchema.properties.{name}",
            "an OAuth connector gets tokens from the OAuth flow, not from settings",
        )
        for name in settings_schema.declared(schema) & _TOKEN_SETTINGS
    ]
    return problems


def _check_template(
    m: Manifest, where: str, template: str, *, relative_ok: bool = False
) -> list[Problem]:
    problems: list[Problem] = []
    properties = m.settings_schema.get("properties", {})
    secrets = settings_schema.secret_names(m.settings_schema)
    for name in PLACEHOLDER.findall(template):
        if name in BUILTIN_PLACEHOLDERS:
            continue
        if name not in properties:
            problems.append(
                Problem(
                    where,
                    f"placeholder <{name}> is not tenant_id, connection_id or a declared setting",
                )
            )
        elif name in secrets:
            problems.append(
                Problem(
                    where,
                    f"placeholder <{name}> names a secret setting; secrets never go into URLs",
                )
            )
        elif not _safe_pattern(properties[name].get("pattern")):
            problems.append(
                Problem(
                    f"$.connection.settingsSchema.properties.{name}.pattern",
                    f"<{name}> fills a URL, so its pattern must reject / ? # @ : and spaces",
                )
            )
    probe = PLACEHOLDER.sub("x", template)
    if not (_allowed_url(probe) or (relative_ok and probe.startswith("/"))):
        problems.append(
            Problem(
                where,
                "must be an https:// URL" + (" or a path starting with /" if relative_ok else ""),
            )
        )
    elif "://" in template and "<" in template.split("://", 1)[0]:
        problems.append(Problem(where, "the scheme cannot be a placeholder"))
    return problems


def _safe_pattern(pattern: Any) -> bool:
    if not isinstance(pattern, str):
        return False
    try:
        compiled = re.compile(pattern)
    except re.error:
        return False
    return not any(compiled.fullmatch(probe) for probe in _URL_BREAKERS)


def _allowed_url(url: str) -> bool:
    """https with a host; plain http only to loopback (local test peers)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}


def _check_webhooks(m: Manifest) -> list[Problem]:
    if m.webhooks is None:
        return []
    secret = m.webhooks.secret
    if secret == "client_secret":
        if m.connection.oauth is None:
            return [Problem("$.webhooks.secret", "'client_secret' needs connection.oauth")]
        return []
    if secret not in settings_schema.secret_names(m.settings_schema):
        return [Problem("$.webhooks.secret", f"{secret!r} is not a declared x-secret setting")]
    return []


def _check_streams(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, stream in enumerate(m.streams):
        where = f"$.streams[{i}]"
        if stream.key in seen:
            problems.append(Problem(f"{where}.key", f"duplicate stream key {stream.key!r}"))
        seen.add(stream.key)
        if stream.mode == "poll":
            problem = (
                "a poll stream needs a cron schedule"
                if stream.schedule is None
                else cron_problem(stream.schedule)
            )
            if problem:
                problems.append(Problem(f"{where}.schedule", problem))
        else:
            if stream.schedule is not None:
                problems.append(Problem(f"{where}.schedule", "a webhook stream has no schedule"))
            if m.webhooks is None:
                problems.append(Problem(f"{where}.mode", "a webhook stream needs a webhooks block"))
    return problems


def _check_fields(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    declared: set[tuple[str, str, str]] = set()
    for i, f in enumerate(m.fields):
        where = f"$.fields[{i}]"
        ident = (f.entity, f.line_collection, f.key)
        if ident in declared:
            problems.append(Problem(f"{where}.key", f"duplicate line field {f.key!r}"))
        declared.add(ident)
        if f.entity not in m.permissions.entities:
            problems.append(
                Problem(f"{where}.entity", f"{f.entity!r} is not in permissions.entities")
            )
        if f.type == "select" and not f.options:
            problems.append(Problem(f"{where}.options", "a select field needs options"))
        if f.type != "select" and f.options is not None:
            problems.append(Problem(f"{where}.options", "only select fields have options"))
        if f.type == "currency" and not f.currency_field:
            problems.append(
                Problem(f"{where}.currencyField", "a currency field needs currencyField")
            )
        if f.type != "currency" and f.currency_field is not None:
            problems.append(
                Problem(f"{where}.currencyField", "only currency fields have currencyField")
            )
    ids: set[str] = set()
    for i, col in enumerate(m.ui.line_columns if m.ui else []):
        where = f"$.ui.lineColumns[{i}]"
        if col.id in ids:
            problems.append(Problem(f"{where}.id", f"duplicate column id {col.id!r}"))
        ids.add(col.id)
        if (col.entity, col.line_collection, col.field) not in declared:
            problems.append(
                Problem(
                    f"{where}.field",
                    f"{col.field!r} is not a line field of {col.entity}.{col.line_collection}",
                )
            )
    return problems
