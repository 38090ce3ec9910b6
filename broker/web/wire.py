"""How things look on the wire: request bodies read into their models, the error shape, the
connection view (ISO-8601 UTC times, secrets redacted, URLs rendered) and the field types
the route modules share."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from broker.errors import BrokerError, InvalidRequest
from broker.manifest import KEY_PATTERN, AuthMode, Manifest, fill_template
from broker.manifest.settings_schema import REDACTED
from broker.services.context import Context
from broker.services.record_ids import CONNECTION_ID, TENANT_ID
from broker.services.records import Connection, ConnectionStatus, ReauthReason

M = TypeVar("M", bound=BaseModel)


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with seconds, e.g. 2026-11-24T07:00:00Z."""
    if ts is None:
        return None
    return _iso_seconds(int(ts))


@functools.lru_cache(maxsize=4096)
def _iso_seconds(ts: int) -> str:
    # the access-token hot path formats the same expiry over and over
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# What a malformed body raises while it is decoded: bad JSON or bytes (ValueError), an unknown
# charset (LookupError), nesting deeper than the parser's stack (RecursionError), a broken
# multipart part (HttpProcessingError).
_UNDECODABLE = (ValueError, LookupError, RecursionError, HttpProcessingError)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says why."""
    try:
        body = await request.json()
    except _UNDECODABLE:
        raise InvalidRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


async def read_form(request: web.Request) -> dict[str, str]:
    """The text fields of a form post (urlencoded or multipart), or a 400 that says why."""
    try:
        form = await request.post()
    except _UNDECODABLE:
        raise InvalidRequest("the form could not be read") from None
    return {name: value for name, value in form.items() if isinstance(value, str)}


class RequestBody(BaseModel):
    """A JSON request body: unknown fields refused, JSON types taken as they are (no "5"
    for 5, no `true` for 1)."""

    model_config = ConfigDict(extra="forbid", strict=True)


async def read_model(request: web.Request, model: type[M]) -> M:
    """The request body as `model`, or a 400 naming every problem (never a value)."""
    body = await read_json(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(_problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    unknown: list[str] = []
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.append(where)
        elif error["type"] == "missing":
            problems.append(f"{where} is required")
        else:
            problems.append(f"{where}: {error['msg']}")
    if unknown:
        problems.insert(0, f"unknown field(s): {', '.join(sorted(unknown))}")
    return "; ".join(problems)


class Error(BaseModel):
    """Every error the API answers."""

    error: str = Field(description="a stable error code")
    message: str


TenantId = Annotated[str, Field(pattern=f"^{TENANT_ID.pattern}$", max_length=128)]
ConnectionId = Annotated[str, Field(pattern=f"^{CONNECTION_ID.pattern}$")]
ConnectorKey = Annotated[str, Field(pattern=KEY_PATTERN, description="a connector key")]
Version = Annotated[int, Field(ge=1)]
SettingsObject = Annotated[Any, WithJsonSchema({"type": "object"})]
"""Settings are judged by the connector's settings schema (`invalid_settings`), not here."""
Time = Annotated[
    str, WithJsonSchema({"type": "string", "format": "date-time", "description": "ISO-8601 UTC"})
]


class ConnectionOAuth(BaseModel):
    token_type: str
    scopes: list[str]
    expires_at: Time | None
    has_refresh_token: bool


class ConnectionRefresh(BaseModel):
    last_refresh_at: Time | None
    last_error: str | None = Field(description="an error code")
    last_error_at: Time | None
    failures: int = Field(ge=0)


class ConnectionView(BaseModel, title="Connection"):
    """A connection, secrets redacted."""

    id: ConnectionId
    tenant_id: TenantId
    connector: ConnectorKey
    status: ConnectionStatus
    reauth_reason: ReauthReason | None = Field(
        description="why the tenant must reconnect, with `status: needs_reauth`: the provider "
        "refused the grant (`invalid_grant`), a refresh's answer was lost after the provider "
        "spent the refresh token (`refresh_lost`), or the provider revoked the grant "
        "(`revoked_upstream`); null otherwise"
    )
    auth_mode: AuthMode | None
    settings: dict[str, Any] = Field(description=f"secret values read `{REDACTED}`")
    settings_version: Version
    webhook_url: str | None = Field(description="the manifest's webhook URL, filled")
    setup_instructions: str | None
    created_at: Time
    updated_at: Time
    refresh: ConnectionRefresh
    oauth: ConnectionOAuth | None = None


def connection_view(ctx: Context, conn: Connection) -> dict[str, Any]:
    manifest = ctx.catalog.manifests.get(conn.connector)
    setup = manifest.connection.setup if manifest else None
    view: dict[str, Any] = {
        "id": conn.id,
        "tenant_id": conn.tenant_id,
        "connector": conn.connector,
        "status": conn.status,
        "reauth_reason": conn.reauth_reason if conn.status == "needs_reauth" else None,
        "auth_mode": manifest.auth_mode if manifest else None,
        "settings": {**conn.settings, **dict.fromkeys(conn.secrets, REDACTED)},
        "settings_version": conn.settings_version,
        "webhook_url": webhook_url(ctx, conn),
        "setup_instructions": setup.instructions if setup else None,
        "created_at": iso(conn.created_at),
        "updated_at": iso(conn.updated_at),
    }
    if conn.token is not None:
        view["oauth"] = {
            "token_type": conn.token.token_type,
            "scopes": conn.token.scopes,
            "expires_at": iso(conn.token.expires_at),
            "has_refresh_token": conn.token.refresh_token is not None,
        }
    refresh = conn.refresh
    view["refresh"] = {
        "last_refresh_at": iso(refresh.last_refresh_at),
        "last_error": refresh.last_error,
        "last_error_at": iso(refresh.last_error_at),
        "failures": refresh.failures,
    }
    return view


def webhook_url(ctx: Context, conn: Connection) -> str | None:
    manifest = ctx.catalog.manifests.get(conn.connector)
    if manifest is None:
        return None
    return webhook_url_for(ctx, manifest, conn.tenant_id, conn.id, conn.settings)


def webhook_url_for(
    ctx: Context,
    manifest: Manifest,
    tenant_id: str,
    connection_id: str,
    settings: Mapping[str, Any],
) -> str | None:
    """The manifest's webhook URL, filled: for a connection, and on the Connect page for the
    connection its session will make (the same function, so the same URL)."""
    setup = manifest.connection.setup
    if setup is None or setup.webhook_url_template is None:
        return None
    try:
        url = fill_template(
            setup.webhook_url_template,
            manifest,
            tenant_id=tenant_id,
            connection_id=connection_id,
            settings=settings,
        )
    except BrokerError:
        return None
    return ctx.settings.webhook_base_url + url if url.startswith("/") else url
