"""Deployment manifests: what a connector is, checked before the broker serves it.

    models           the pydantic models (the structure, unknown keys refused)
    settings_schema  a connector's settingsSchema: its checks, settings validation, redaction
    cron             stream schedules, checked not run
    templates        `<name>` URL templates: filling them and keeping them on their host
    checks           the rules that span blocks
    loader           `load_manifest` / `validate_manifest`: structure first, then the checks
    catalog          every manifest the broker serves, loaded once at start

`permissions.http` is checked by `broker.http_rules` (a unit of its own: the runtime SDK
uses it too). Each module imports only those above it in this list; this package re-exports
what the rest of the broker uses, so callers write
`from broker.manifest import Manifest, fill_template`.
"""

from broker.manifest.catalog import BUNDLED_DIR, Catalog, load_catalog, manifest_paths
from broker.manifest.loader import load_manifest, validate_manifest
from broker.manifest.models import (
    KEY_PATTERN,
    UI,
    WEBHOOK_SCHEMES,
    AuthMode,
    BasicAuth,
    BearerAuth,
    Connection,
    HeaderAuth,
    HttpAuth,
    LineColumn,
    LineField,
    Manifest,
    OAuthClient,
    OAuthConfig,
    Permissions,
    QueryAuth,
    RateLimit,
    Setup,
    Stream,
    TestConnection,
    VisibleWhen,
    Webhooks,
)
from broker.manifest.templates import BUILTIN_PLACEHOLDERS, PLACEHOLDER, fill_template

__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "BUNDLED_DIR",
    "KEY_PATTERN",
    "PLACEHOLDER",
    "UI",
    "WEBHOOK_SCHEMES",
    "AuthMode",
    "BasicAuth",
    "BearerAuth",
    "Catalog",
    "Connection",
    "HeaderAuth",
    "HttpAuth",
    "LineColumn",
    "LineField",
    "Manifest",
    "OAuthClient",
    "OAuthConfig",
    "Permissions",
    "QueryAuth",
    "RateLimit",
    "Setup",
    "Stream",
    "TestConnection",
    "VisibleWhen",
    "Webhooks",
    "fill_template",
    "load_catalog",
    "load_manifest",
    "manifest_paths",
    "validate_manifest",
]
