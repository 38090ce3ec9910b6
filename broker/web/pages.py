"""The HTML pages a tenant's browser sees: the frame every page shares, and the pages around
the Connect flow (the OAuth interstitial, dead links, a failed callback, errors). The API-key
settings form is `broker.web.settings_form`, in this frame.

Every page loads only the broker's own stylesheet and script (`broker.web.assets`); its CSP
allows nothing else, no inline script or style, and no form target but the broker and the
origins a page names (Chromium applies `form-action` to the redirects after a submit too).
Without the assets (an error page the request guard makes) a page is plain, still readable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from html import escape
from urllib.parse import urlsplit

from aiohttp import web

from broker.errors import BrokerError
from broker.web.assets import CSS, JS, LOGO, Assets
from broker.web.openapi.spec import Handler
from broker.web.state import ASSETS

_CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
# an origin as a CSP source expression: nothing that could end the directive or add another
_ORIGIN_SOURCE = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def attr(value: object) -> str:
    """A value for a double-quoted attribute."""
    return escape(str(value), quote=True)


def render(
    title: str,
    body: str,
    status: int = 200,
    *,
    assets: Assets | None,
    form_targets: Iterable[str] = (),
) -> web.Response:
    """`body` in the shared frame. `form_targets`: origins a form on the page may lead to
    besides ours (the dashboard after the API-key form, the provider after the interstitial)."""
    targets = "".join(f" {t}" for t in form_targets if _ORIGIN_SOURCE.fullmatch(t))
    head = banner = ""
    if assets is not None:
        head = (
            f'<link rel="stylesheet" href="{attr(assets.url(CSS))}">'
            f'<script src="{attr(assets.url(JS))}" defer></script>'
        )
        banner = _banner(assets)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{head}</head>"
        f"<body>{banner}<main>{body}</main></body></html>"
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={**HEADERS, "Content-Security-Policy": f"{_CSP}; form-action 'self'{targets}"},
    )


def _banner(assets: Assets) -> str:
    if not assets.brand_name and not assets.has_logo:
        return ""
    logo = (
        f'<img src="{attr(assets.url(LOGO))}" alt="{attr(assets.brand_name)}">'
        if assets.has_logo
        else ""
    )
    # with a logo, its alt text names the brand; the name beside it would be read twice
    name = f"<span>{escape(assets.brand_name)}</span>" if assets.brand_name else ""
    if assets.has_logo and assets.brand_name:
        name = f'<span aria-hidden="true">{escape(assets.brand_name)}</span>'
    return f'<header class="topbar"><div class="topbar-inner">{logo}{name}</div></header>'


def back_link(url: str, label: str | None = None) -> str:
    """A link to the dashboard, named after its host (the user sees where it leads)."""
    text = label or f"Back to {urlsplit(url).netloc}"
    link = f'<a class="primary" id="back" href="{attr(url)}">{escape(text)}</a>'
    return f'<p class="actions">{link}</p>'


def error_page(
    code: str,
    message: str,
    status: int = 400,
    *,
    assets: Assets | None = None,
    title: str = "Cannot connect",
    back_url: str | None = None,
) -> web.Response:
    body = (
        f"<h1>{escape(title)}</h1>"
        f'<p class="lead" id="error" data-error="{attr(code)}">{escape(message)}</p>'
    )
    if back_url is not None:
        body += back_link(back_url)
    return render(title, body, status, assets=assets)


def dead_link_page(
    assets: Assets, *, reason: str | None, connector: str | None, back_url: str | None
) -> web.Response:
    """A link that does not work: used (back with the result it had), expired (back to start
    again), or unknown (no trusted place to go back to)."""
    if reason == "used":
        title = "This link was already used"
        message = f"{connector} was connected through this link, and a link works only once."
    elif reason == "expired":
        title = "This link has expired"
        message = "Connect links work for 30 minutes. Go back and start again for a new one."
    else:
        title = "This link does not work"
        message = (
            "This connect link is unknown, used or expired. "
            "Go back to where you started and ask for a new one."
        )
    return error_page(
        "invalid_session", message, 404, assets=assets, title=title, back_url=back_url
    )


def webhook_section(url: str | None, instructions: str | None) -> str:
    """The setup instructions, and the webhook URL with a copy button (the button appears with
    the script; without it the field is still selectable)."""
    out = ""
    if instructions:
        out += f'<p class="notice" id="instructions">{escape(instructions)}</p>'
    if url is not None:
        # a text area, not an input: a long URL wraps and stays readable on a phone
        out += (
            '<div class="field"><label for="webhook-url">Webhook URL</label>'
            '<div class="control stacked">'
            f'<textarea id="webhook-url" class="mono" rows="2" readonly'
            f' aria-describedby="webhook-url-help">{escape(url)}</textarea>'
            '<button type="button" data-copy aria-controls="webhook-url"'
            ' data-status="webhook-url-status" hidden>Copy</button></div>'
            '<p class="help" id="webhook-url-help">Paste this where the provider asks for the'
            " endpoint that receives its events.</p>"
            '<p class="status" id="webhook-url-status" role="status"></p></div>'
        )
    return out


def interstitial(
    assets: Assets,
    *,
    connector: str,
    provider_origin: str,
    provider_host: str,
    scopes: list[str],
    action: str,
    cancel_url: str,
    reconnecting: str | None,
    setup: str,
) -> web.Response:
    """Before the browser leaves for the provider: who, where, which access; one button."""
    if scopes:
        items = "".join(
            f'<li><code id="scope-{i}">{escape(s)}</code></li>' for i, s in enumerate(scopes)
        )
        access = f'<ul class="scopes" id="scopes">{items}</ul>'
    else:
        access = '<p id="scopes">No particular permissions (the provider\'s defaults).</p>'
    notice = (
        f'<p class="notice" id="reconnect">This renews the existing connection '
        f"<code>{escape(reconnecting)}</code>; its id and settings stay.</p>"
        if reconnecting
        else ""
    )
    body = (
        f"<h1>Connect {escape(connector)}</h1>"
        f'<p class="lead">You will sign in at <strong id="provider-host">{escape(provider_host)}'
        f"</strong> and be asked to allow access for {escape(connector)}.</p>{notice}"
        f"<h2>Access requested</h2>{access}{setup}"
        f'<form method="post" action="{attr(action)}" id="continue">'
        '<div class="actions"><button type="submit" class="primary">'
        f"Continue to {escape(provider_host)}</button>"
        f'<a href="{attr(cancel_url)}" id="cancel">Cancel</a></div></form>'
    )
    return render(f"Connect {connector}", body, assets=assets, form_targets=[provider_origin])


# what a failed callback says, by its error code (the rest: the provider reported an error)
_FAILURES = {
    "access_denied": (
        "Access was not granted",
        "Access was declined at the provider, so {connector} was not connected.",
    ),
    "session_in_use": (
        "This link is in use in another tab",
        "Finish connecting {connector} in the other tab or window.",
    ),
    "session_expired": (
        "This link has expired",
        "The connect link expired or was already used. Go back and start again.",
    ),
    "oauth_app_misconfigured": (
        "Could not connect {connector}",
        "The app registered with the provider is misconfigured. Ask your administrator.",
    ),
    "reconnect_failed": (
        "Could not save the connection",
        "{connector} answered, but the connection could not be saved. Go back and try again.",
    ),
}
_PROVIDER_ERROR = (
    "Could not connect {connector}",
    "The provider reported an error, so {connector} was not connected. "
    "Go back and try again; if it keeps failing, tell your administrator.",
)
MAX_SHOWN_CODE = 64


def callback_failure(assets: Assets, *, connector: str, error: str, back_url: str) -> web.Response:
    """A failed OAuth callback: what happened, in words, and the way back to the dashboard
    (which gets `status=error&error=<code>` when the user follows it)."""
    title, message = _FAILURES.get(error, _PROVIDER_ERROR)
    title, message = title.format(connector=connector), message.format(connector=connector)
    body = (
        f"<h1>{escape(title)}</h1>"
        f'<p class="lead" id="error" data-error="{attr(error[:MAX_SHOWN_CODE])}">'
        f"{escape(message)}</p>"
        f'<p class="muted">Error code: <code>{escape(error[:MAX_SHOWN_CODE])}</code></p>'
        f"{back_link(back_url)}"
    )
    return render(title, body, assets=assets)


def with_pages(handler: Handler) -> Handler:
    """A browser route whose failures are pages in the Connect pages' frame (the request
    guard, which would answer them otherwise, has no stylesheet to give them)."""

    @functools.wraps(handler)
    async def paged(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BrokerError as exc:
            assets = request.app[ASSETS]
            return error_page(exc.code, str(exc), exc.status, assets=assets)

    return paged
