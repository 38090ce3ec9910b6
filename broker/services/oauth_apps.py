"""OAuth app registrations: the client credentials a connector's `client.credentialKey` names.

One default registration per credential key, plus optional per-tenant overrides that win
for their tenant (a tenant bringing its own app). Secrets and private keys are sealed with
the record; reads redact them.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from broker import oauth
from broker.errors import InvalidRequest, NotFound
from broker.manifest import KEY_PATTERN, OAuthConfig
from broker.services import record_ids, records
from broker.services.context import Context
from broker.services.records import OAuthApp
from broker.store import keys


async def put(ctx: Context, credential_key: str, body: dict[str, Any]) -> OAuthApp:
    """`body`: the registration's fields as given, their shape already checked (the PUT
    route's request model)."""
    check_credential_key(credential_key)
    tenant_id = body.get("tenant_id")
    if body.get("private_key") is not None:
        _check_private_key(body["private_key"])
    key = keys.oauth_app(credential_key, tenant_id)
    now = ctx.clock()
    # Keep the secret being replaced for a grace period: providers that sign webhooks with
    # the client secret (Shopify) keep signing with the old one for a while. Flows already
    # under way need nothing: they read the app when they reach the token endpoint.
    found = await records.load(ctx.store, key, OAuthApp)
    previous, rotated_at = None, None
    if found is not None:
        old = found[0]
        previous, rotated_at = old.previous_client_secret, old.secret_rotated_at
        if old.client_secret and old.client_secret != body.get("client_secret"):
            previous, rotated_at = old.client_secret, now
    app = OAuthApp(
        credential_key=credential_key,
        updated_at=now,
        previous_client_secret=previous,
        secret_rotated_at=rotated_at,
        **body,
    )
    await records.save(ctx.store, key, app, None if found is None else found[1])
    ctx.audit.record(
        actor="admin", action="oauth_app.put", tenant_id=tenant_id or "*", name=credential_key
    )
    return app


async def get(ctx: Context, credential_key: str, tenant_id: str | None = None) -> OAuthApp:
    check_credential_key(credential_key)
    if tenant_id is not None:
        record_ids.check_tenant_id(tenant_id)
    found = await records.load(ctx.store, keys.oauth_app(credential_key, tenant_id), OAuthApp)
    if found is None:
        where = f" for tenant {tenant_id!r}" if tenant_id else ""
        raise NotFound(f"no OAuth app {credential_key!r}{where}")
    return found[0]


async def resolve(ctx: Context, credential_key: str, tenant_id: str) -> OAuthApp:
    """The tenant's override if it has one, else the default registration."""
    for tenant in (tenant_id, None):
        found = await records.load(ctx.store, keys.oauth_app(credential_key, tenant), OAuthApp)
        if found is not None:
            return found[0]
    raise InvalidRequest(f"no OAuth app is registered under credential key {credential_key!r}")


def client_auth(app: OAuthApp, config: OAuthConfig) -> oauth.ClientAuth:
    """How this app authenticates at the provider's token and revocation endpoints."""
    return oauth.ClientAuth(
        method=config.token_auth_method,
        client_id=app.client_id,
        client_secret=app.client_secret,
        private_key_pem=app.private_key,
        key_id=app.key_id,
    )


def client_secrets_within(app: OAuthApp, grace: float, now: float) -> list[str]:
    """The current client secret, then the replaced one while within `grace` seconds."""
    secrets = [app.client_secret] if app.client_secret else []
    if (
        app.previous_client_secret
        and app.secret_rotated_at
        and now - app.secret_rotated_at <= grace
    ):
        secrets.append(app.previous_client_secret)
    return secrets


def redacted(app: OAuthApp) -> dict[str, Any]:
    return {
        "credential_key": app.credential_key,
        "tenant_id": app.tenant_id,
        "client_id": app.client_id,
        "client_secret": "********" if app.client_secret else None,
        "private_key": "********" if app.private_key else None,
        "key_id": app.key_id,
        "updated_at": app.updated_at,
    }


def check_credential_key(credential_key: str) -> None:
    if not re.fullmatch(KEY_PATTERN, credential_key):
        raise InvalidRequest("credential_key must be lowercase letters, digits, '_' or '-'")


def _check_private_key(pem: str) -> None:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidRequest("private_key must be an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return
    raise InvalidRequest("private_key must be RSA (2048 bits or more) or EC P-256")
