"""Every HTML answer carries the page security headers, on every route that answers HTML
(the OpenAPI document says which): no framing, no sniffing, no referrer, no caching (a page
can carry a connect token), and a CSP that allows nothing but the broker's own files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import make_mocked_request

from broker.config import Settings
from tests.helpers import broker_client
from tests.web.test_connect_form import new_link

PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def html_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, op in operations.items()
        if any("text/html" in r.get("content", {}) for r in op["responses"].values())
    }


async def test_every_html_answer_carries_the_page_headers(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(connect_rate_limit=0.001, connect_rate_burst=12)
    async with broker_client(settings) as client:
        link = await new_link(client)
        asks: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", link, {}),  # the API-key form
            ("POST", link, {"data": {"api_key": ""}}),  # the form again, with its problem
            ("GET", "/connect/unknown", {}),  # a dead link
            ("POST", "/connect/unknown", {"data": {"api_key": "x"}}),
            ("POST", "/connect/unknown/continue", {}),
            ("POST", link, {"data": b"x" * (settings.max_body_bytes + 1)}),  # 413
            ("GET", "/oauth/callback/github?state=nope&code=x", {}),  # an unknown state
            ("GET", "/oauth/callback/github?error=access_denied", {}),
        ]
        covered: set[tuple[str, str]] = set()
        pages = 0
        for method, path, kwargs in asks * 2:  # the second round is rate limited: 429 pages
            resp = await client.request(method, path, allow_redirects=False, **kwargs)
            assert resp.status < 500, (method, path, resp.status)
            if resp.content_type != "text/html":
                continue
            pages += 1
            covered.add((method, await template(client, method, path)))
            for name, value in PAGE_HEADERS.items():
                assert resp.headers.get(name) == value, (method, path, name)
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert pages >= len(asks) * 2 - 1
        document = await (await client.get("/openapi.json")).json()
        assert html_routes(document) <= covered


async def template(client: Any, method: str, path: str) -> str:
    """The route `path` is served by, as the document names it."""
    request = make_mocked_request(method, path.split("?")[0], app=client.app)
    match = await client.app.router.resolve(request)
    return str(match.route.resource.canonical)
