"""The settings form as a connect session shows it (`GET`/`POST /connect/{token}`)."""

from __future__ import annotations

from aiohttp import web

from broker.config import origin_of
from broker.manifest import Manifest
from broker.services.connect import sessions as connect_sessions
from broker.services.context import Context
from broker.services.records import ConnectSession
from broker.web import pages
from broker.web.assets import Assets
from broker.web.settings_form import FormState, settings_form
from broker.web.wire import webhook_url_for


def session_form(
    ctx: Context,
    assets: Assets,
    token: str,
    manifest: Manifest,
    session: ConnectSession,
    state: FormState,
) -> web.Response:
    """The settings form of a connect session: where it posts, where Cancel goes, the return
    origin its CSP must allow, and the setup section."""
    state.updating = session.connection_id
    return settings_form(
        assets,
        manifest,
        state,
        action=connect_sessions.connect_path(ctx, token),
        cancel_url=cancel_url(session),
        return_origin=origin_of(session.return_url),
        setup=setup_section(ctx, manifest, session),
    )


def setup_section(ctx: Context, manifest: Manifest, session: ConnectSession) -> str:
    """The manifest's setup instructions and the webhook URL of the connection the session
    makes (its id is fixed: the URL shown is the URL that will work)."""
    setup = manifest.connection.setup
    url = None
    if session.target_id is not None:
        url = webhook_url_for(ctx, manifest, session.tenant_id, session.target_id, session.settings)
    return pages.webhook_section(url, setup.instructions if setup else None)


def cancel_url(session: ConnectSession) -> str:
    # the answer a provider gives when the user declines: dashboards handle it already
    return connect_sessions.return_to(session.return_url, status="error", error="access_denied")
