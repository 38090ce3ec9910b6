"""The few HTML pages a browser sees: the API-key settings form and error pages."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from aiohttp import web

from broker.manifest import Manifest
from broker.manifest.settings_schema import SECRET

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin:1rem 0 .25rem}input{width:100%;padding:.4rem}"
    ".error{color:#a00}button{margin-top:1.5rem;padding:.5rem 1.2rem}"
)


_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
# an origin as a CSP source expression: nothing that could end the directive or add another
_ORIGIN_SOURCE = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def _page(title: str, body: str, status: int, *, form_target: str | None = None) -> web.Response:
    """`form_target`: an origin a form on the page may lead to besides ours (Chromium applies
    `form-action` to the redirects after a submit, not only to the post itself)."""
    csp = _CSP
    if form_target is not None and _ORIGIN_SOURCE.fullmatch(form_target):
        csp += f" {form_target}"
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width'><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
        },
    )


def error_page(code: str, message: str, status: int = 400) -> web.Response:
    return _page(
        "Cannot connect",
        f"<h1>Cannot connect</h1><p class='error' id='error' "
        f"data-error='{escape(code)}'>{escape(message)}</p>",
        status,
    )


def settings_form(
    manifest: Manifest,
    action: str,
    problems: list[str] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
    *,
    return_origin: str,
    updating: bool = False,
) -> web.Response:
    """One input per declared setting; secrets are password fields and never re-filled.
    A right submit is answered with a redirect to `return_origin` (the dashboard), which the
    page's CSP must allow. `updating`: the form changes an existing connection's settings."""
    values = values or {}
    schema = manifest.settings_schema
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        secret = prop.get(SECRET) is True
        title = prop.get("title", name)
        value = "" if secret else str(values.get(name, ""))
        kind = "password" if secret else "text"
        fields.append(
            f"<label for='{escape(name)}'>{escape(title)}{' *' if name in required else ''}</label>"
            f"<input id='{escape(name)}' name='{escape(name)}' type='{kind}'"
            f" placeholder='{escape(str(prop.get('x-placeholder', '')))}' value='{escape(value)}'"
            f" autocomplete='off'>"
        )
    errors = "".join(f"<p class='error'>{escape(p)}</p>" for p in problems or [])
    if updating:
        errors = "<p>Fields left empty keep their current values.</p>" + errors
    body = (
        f"<h1>Connect {escape(manifest.name)}</h1>{errors}"
        f"<form method='post' action='{escape(action)}'>{''.join(fields)}"
        "<button type='submit'>Connect</button></form>"
    )
    return _page(f"Connect {manifest.name}", body, status, form_target=return_origin)
