"""Webhook signature verification as a service: the signing secret never leaves the broker.

The platform forwards the provider's raw body and headers; the scheme comes from the
manifest's `webhooks.auth` and the secret from the connection (or, for providers that sign
with the OAuth app's secret, from the app). During a secret roll the replaced secret keeps
verifying for `BROKER_WEBHOOK_SECRET_GRACE` seconds.

A delivery seen before is a replay: its id and the fingerprint of what its signature covers
are each claimed once, atomically, with an expiring lock, and either one taken before
refuses it (an id header outside the signature can be changed at will). Where a timestamp
is signed, the tolerance already refuses an old delivery, so a claim need only outlive it;
where none is (GitHub, Shopify) a claim lasts `BROKER_WEBHOOK_REPLAY_WINDOW`, and a
delivery captured before that is accepted again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from broker import metrics, webhooks
from broker.errors import Conflict, InvalidRequest
from broker.services import connections, oauth_apps
from broker.services.audited import audited
from broker.services.context import Context
from broker.services.settings_versions import secret_values_within
from broker.store import keys

TOLERANCE = webhooks.DEFAULT_TOLERANCE


class Replayed(Conflict):
    code = "replayed"


class SecretUnset(InvalidRequest):
    code = "webhook_secret_unset"


async def verify(
    ctx: Context, connection_id: str, body: bytes, headers: Mapping[str, str]
) -> webhooks.Verified:
    connection, _ = await connections.get(ctx, connection_id)
    manifest = ctx.catalog.get(connection.connector)
    if manifest.webhooks is None:
        raise InvalidRequest(f"{manifest.key} declares no webhooks")
    now = ctx.clock()
    grace = ctx.settings.webhook_secret_grace
    name = manifest.webhooks.secret
    scheme = manifest.webhooks.auth

    def count(outcome: str) -> None:
        metrics.WEBHOOK_VERIFICATIONS.labels(scheme, "valid" if outcome == "ok" else outcome).inc()

    with audited(
        ctx.audit,
        "admin",
        "webhook.verify",
        connection.tenant_id,
        connection.id,
        scheme,
        then=count,
    ):
        if name == "client_secret":
            config = manifest.oauth
            assert config is not None  # manifest checks guarantee it
            app = await oauth_apps.resolve(ctx, config.client.credential_key, connection.tenant_id)
            secrets = oauth_apps.client_secrets_within(app, grace, now)
        else:
            secrets = secret_values_within(connection, name, grace, now)
        if not secrets:
            raise SecretUnset(f"the webhook signing secret {name!r} is not set on {connection.id}")
        verified = webhooks.verify(
            manifest.webhooks.auth,
            body=body,
            headers=headers,
            secrets=secrets,
            now=now,
            tolerance=TOLERANCE,
        )
        window = (
            2 * TOLERANCE + 60
            if verified.timestamp is not None
            else ctx.settings.webhook_replay_window
        )
        for claim in (verified.delivery_id, verified.fingerprint):
            digest = hashlib.sha256(claim.encode()).hexdigest()[:40]
            if (
                await ctx.store.acquire(keys.webhook_delivery(connection.id, digest), window)
                is None
            ):
                raise Replayed("this delivery was verified before (replay)")
        return verified
