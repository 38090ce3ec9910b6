"""The Connect pages over HTTP: the API-key form drawn from the settingsSchema, the OAuth
interstitial, the pages of dead links and failed callbacks, their headers, and the assets
they load. Chromium runs the same pages in tests/e2e/test_connect_pages.py."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from broker.config import Settings
from broker.services import connections
from broker.web.state import CONTEXT
from tests.helpers import admin, broker_client, served
from tests.web.connect_pages import WIDGET_KEY, FakeRuntime, Page, write_widget

Client = TestClient[Any, Any]
RETURN = "http://127.0.0.1:8080/done"
GOOD_KEY = "good_KEY_CANARY_3c59dc04"
SECOND_SECRET = "whsec_SECOND_CANARY_b6d767d2"


@pytest.fixture
async def runtime() -> AsyncIterator[tuple[FakeRuntime, str]]:
    fake = FakeRuntime()
    async with served(fake.app) as url:
        yield fake, url


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings],
    runtime: tuple[FakeRuntime, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[Client]:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        runtime_url=runtime[1],
        connectors_dirs=str(write_widget(tmp_path / "connectors")),
        webhook_base_url="https://hooks.example.com",
    )
    async with broker_client(settings) as client:
        yield client
    for canary in (WIDGET_KEY, GOOD_KEY, SECOND_SECRET):
        assert canary not in caplog.text


async def new_link(client: Client, connector: str, **extra: Any) -> str:
    body = {"tenant_id": "tenant-p", "connector": connector, "return_url": RETURN, **extra}
    resp = await client.post("/v1/connect-sessions", headers=admin(), json=body)
    assert resp.status == 201, await resp.text()
    return urlsplit(str((await resp.json())["connect_url"])).path


async def stored(client: Client) -> list[str]:
    ctx = client.app[CONTEXT]
    return [c.id for c in await connections.list_for_tenant(ctx, "tenant-p")]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_page_headers(headers: Any, *form_targets: str) -> None:
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'self';")
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert f"form-action 'self'{''.join(' ' + t for t in form_targets)}" in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


async def test_the_form_is_drawn_from_the_settings_schema(api: Client) -> None:
    link = await new_link(api, "widget")
    resp = await api.get(link)
    assert resp.status == 200
    assert_page_headers(resp.headers, "http://127.0.0.1:8080")
    html = await resp.text()
    page = Page(html)
    assert page.text("instructions") == "Create a widget webhook pointing at the URL below."

    key = page.by_id["api_key"]
    assert (key["type"], key["minlength"], key["placeholder"]) == ("password", "8", "wk_...")
    assert "required" in key and "value" not in key
    assert page.text(key["aria-describedby"]) == "Settings, then API keys, in the widget console."
    labels = {label["for"]: label for label in page.all("label")}
    assert set(labels) >= {"api_key", "account", "region", "page_size", "webhook_secret"}
    reveal = [b for b in page.all("button") if b.get("aria-controls") == "api_key"]
    assert len(reveal) == 1 and "hidden" in reveal[0]  # the script shows it

    account = page.by_id["account"]
    assert (account["type"], account["maxlength"]) == ("text", "20")
    # JSON Schema searches, HTML matches the whole value; `-` escaped for the `v` flag
    assert account["pattern"] == r"[\s\S]*(?:^[a-z0-9][a-z0-9\-]*$)[\s\S]*"
    assert page.by_id["region"]["<tag>"] == "select"
    options = [o["value"] for o in page.all("option")]
    assert options == ["", "eu", "us"]
    size = page.by_id["page_size"]
    assert (size["type"], size["min"], size["step"]) == ("number", "1", "1")
    assert "required" not in size
    assert 'Page size <span class="optional">(optional)</span>' in html

    assert "readonly" in page.by_id["webhook-url"]
    webhook = page.text("webhook-url")
    assert webhook.startswith("https://hooks.example.com/hooks/tenant-p/widget?")
    stylesheet = [link["href"] for link in page.all("link")]
    script = [s["src"] for s in page.all("script")]
    assert re.fullmatch(r"/static/[0-9a-f]{16}/connect\.css", stylesheet[0])
    assert script == [stylesheet[0].replace("connect.css", "connect.js")]


async def test_the_webhook_url_shown_is_the_connections(api: Client) -> None:
    link = await new_link(api, "stripe")
    shown = Page(await (await api.get(link)).text()).text("webhook-url")
    done = await api.post(link, data={"api_key": "sk_test_good_1"}, allow_redirects=False)
    assert done.status == 303
    connection_id = query_of(done.headers["Location"])["connection_id"]
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert view["webhook_url"] == shown
    assert f"connection_id={connection_id}" in shown


async def test_the_server_checks_what_the_browser_checks(
    api: Client, runtime: tuple[FakeRuntime, str]
) -> None:
    """Every rule the browser applies, sent past it: each message beside its field, the
    entered values kept but never a secret, nothing stored, the runtime never asked."""
    link = await new_link(api, "widget")
    resp = await api.post(
        link,
        data={
            "api_key": "short",
            "account": "Not-Valid_name-that-is-far-too-long",
            "region": "mars",
            "page_size": "0",
            "webhook_secret": WIDGET_KEY,
        },
    )
    assert resp.status == 400
    html = await resp.text()
    assert WIDGET_KEY not in html and "short" not in html
    page = Page(html)
    assert page.text("api_key-error") == "must be at least 8 characters long"
    assert "does not match the pattern" in page.text("account-error")
    assert "must be at most 20 characters long" in page.text("account-error")
    assert page.text("region-error") == "must be one of 'eu', 'us'"
    assert page.text("page_size-error") == "must be >= 1"
    assert page.by_id["account"]["aria-invalid"] == "true"
    assert page.by_id["account"]["value"] == "Not-Valid_name-that-is-far-too-long"
    assert "value" not in page.by_id["webhook_secret"]
    assert "Check the fields marked below." in page.text("problems")

    missing = Page(await (await api.post(link, data={"region": "eu"})).text())
    assert missing.text("api_key-error") == "is required"
    assert missing.text("account-error") == "is required"
    assert await stored(api) == [] and runtime[0].calls == 0


async def test_a_refused_key_shows_the_runtimes_message(
    api: Client, runtime: tuple[FakeRuntime, str]
) -> None:
    link = await new_link(api, "widget")
    entered = {"account": "my-team", "region": "us", "page_size": "50"}
    refused = await api.post(link, data={"api_key": WIDGET_KEY, **entered})
    assert refused.status == 400
    html = await refused.text()
    assert WIDGET_KEY not in html
    page = Page(html)
    assert (
        page.text("problems")
        == f"Widget Cloud did not accept these settings: {FakeRuntime.MESSAGE}"
    )
    assert page.by_id["account"]["value"] == "my-team"
    assert page.by_id["page_size"]["value"] == "50"
    assert [o for o in page.all("option") if "selected" in o] == [
        {"<tag>": "option", "value": "us", "selected": ""}
    ]
    assert "value" not in page.by_id["api_key"]
    assert await stored(api) == []

    done = await api.post(link, data={"api_key": GOOD_KEY, **entered}, allow_redirects=False)
    assert done.status == 303
    assert query_of(done.headers["Location"])["status"] == "connected"


async def test_a_reconnect_says_what_it_changes_and_keeps_empty_secrets(api: Client) -> None:
    created = await api.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "tenant-p",
            "connector": "widget",
            "settings": {"api_key": GOOD_KEY, "account": "team-a", "region": "eu"},
        },
    )
    connection_id = (await created.json())["id"]
    link = await new_link(api, "widget", connection_id=connection_id)
    page = Page(await (await api.get(link)).text())
    assert connection_id in page.text("reconnect")
    assert page.by_id["account"]["value"] == "team-a"
    assert "value" not in page.by_id["api_key"]
    assert "Leave empty to keep the current value." in page.text("api_key-help")
    assert not [tag for tag in page.all("input") if "required" in tag]
    assert page.text("webhook-url").endswith(f"connection_id={connection_id}")

    done = await api.post(
        link, data={"api_key": "", "webhook_secret": SECOND_SECRET}, allow_redirects=False
    )
    assert done.status == 303
    assert query_of(done.headers["Location"])["connection_id"] == connection_id
    conn, _ = await connections.get(api.app[CONTEXT], connection_id)
    assert conn.secrets == {"api_key": GOOD_KEY, "webhook_secret": SECOND_SECRET}
    assert conn.settings == {"account": "team-a", "region": "eu"}


async def oauth_app(client: Client) -> None:
    app = {"client_id": "pages-client", "client_secret": "pages-secret-0123456789"}
    assert (await client.put("/v1/oauth-apps/slack_app", headers=admin(), json=app)).status == 200


async def test_the_interstitial_names_the_provider_and_the_scopes(client: Client) -> None:
    await oauth_app(client)
    link = await new_link(client, "slack")
    resp = await client.get(link, allow_redirects=False)
    assert resp.status == 200
    assert_page_headers(resp.headers, "https://slack.com")
    page = Page(await resp.text())
    assert page.text("provider-host") == "slack.com"
    scopes = [page.texts[f"scope-{i}"] for i in range(3)]
    assert scopes == ["channels:history", "channels:read", "users:read"]
    form = page.by_id["continue"]
    assert (form["method"], form["action"]) == ("post", link + "/continue")
    assert query_of(page.by_id["cancel"]["href"]) == {"status": "error", "error": "access_denied"}
    assert "/api/v1/extensions/tenant-p/slack/" in page.text("webhook-url")

    onward = await client.post(link + "/continue", allow_redirects=False)
    assert onward.status == 302
    assert onward.headers["Location"].startswith("https://slack.com/oauth/v2/authorize?")
    cookie = onward.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Path=/oauth/callback/slack" in cookie


async def failed_callback(client: Client, link: str, error: str) -> Any:
    onward = await client.post(link + "/continue", allow_redirects=False)
    state = query_of(onward.headers["Location"])["state"]
    return await client.get(
        "/oauth/callback/slack", params={"state": state, "error": error}, allow_redirects=False
    )


@pytest.mark.parametrize(
    ("error", "title"),
    [("access_denied", "Access was not granted"), ("server_error", "Could not connect Slack")],
)
async def test_a_failed_callback_is_a_page_with_a_way_back(
    client: Client, error: str, title: str
) -> None:
    await oauth_app(client)
    resp = await failed_callback(client, await new_link(client, "slack"), error)
    assert resp.status == 200
    html = await resp.text()
    page = Page(html)
    assert f"<h1>{title}</h1>" in html and page.by_id["error"]["data-error"] == error
    back = page.by_id["back"]["href"]
    assert back.startswith(RETURN + "?")
    assert query_of(back) == {"status": "error", "error": error}
    assert "Max-Age=0" in resp.headers["Set-Cookie"]  # this flow's cookie goes


async def test_skip_interstitial_keeps_the_redirects(client: Client) -> None:
    await oauth_app(client)
    link = await new_link(client, "slack", skip_interstitial=True)
    started = await client.get(link, allow_redirects=False)
    assert started.status == 302
    state = query_of(started.headers["Location"])["state"]
    back = await client.get(
        "/oauth/callback/slack",
        params={"state": state, "error": "access_denied"},
        allow_redirects=False,
    )
    assert back.status == 302
    assert query_of(back.headers["Location"]) == {"status": "error", "error": "access_denied"}


async def test_dead_links_say_why_and_lead_back_when_they_can(api: Client) -> None:
    used = await new_link(api, "stripe")
    done = await api.post(used, data={"api_key": "sk_test_good_2"}, allow_redirects=False)
    resp = await api.get(used)
    assert resp.status == 404
    page = Page(await resp.text())
    assert "<h1>This link was already used</h1>" in await resp.text()
    assert page.text("error").startswith("Stripe was connected through this link")
    assert page.by_id["back"]["href"] == done.headers["Location"]
    assert (await api.post(used, data={"api_key": "sk_test_good_3"})).status == 404

    expired = await new_link(api, "stripe")
    ctx = api.app[CONTEXT]
    real_clock = ctx.clock
    ctx.clock = lambda: real_clock() + 31 * 60
    try:
        resp = await api.get(expired)
        assert resp.status == 404
        page = Page(await resp.text())
        assert "expired" in await resp.text()
        assert query_of(page.by_id["back"]["href"]) == {
            "status": "error",
            "error": "session_expired",
        }
    finally:
        ctx.clock = real_clock

    unknown = Page(await (await api.get("/connect/made-up-token")).text())
    assert "back" not in unknown.by_id
    assert "unknown, used or expired" in unknown.text("error")


async def test_a_continue_on_an_api_key_link_is_refused(api: Client) -> None:
    link = await new_link(api, "stripe")
    resp = await api.post(link + "/continue")
    assert resp.status == 400
    assert "text/html" in resp.headers["Content-Type"]
    stylesheet = Page(await resp.text()).all("link")[0]["href"]
    assert re.fullmatch(r"/static/[0-9a-f]{16}/connect\.css", stylesheet)


async def test_the_assets_are_served_for_keeps(client: Client) -> None:
    page = Page(await (await client.get("/connect/nothing")).text())
    css_url = page.all("link")[0]["href"]
    css = await client.get(css_url)
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    assert (await css.text()).startswith(":root{--accent:#1d4ed8;--on-accent:#ffffff}")
    js = await client.get(css_url.replace("connect.css", "connect.js"))
    assert js.headers["Content-Type"].startswith("text/javascript")
    other = await client.get("/static/0000000000000000/connect.css")
    assert other.status == 200 and other.headers["Cache-Control"] == "no-store"
    assert (await client.get(css_url.replace("connect.css", "logo"))).status == 404
    assert (await client.get(css_url.replace("connect.css", "../app.py"))).status == 404


async def test_branding(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    settings = make_settings(
        brand_name="Acme Books", brand_accent="#FFCC00", brand_logo_file=str(logo)
    )
    async with broker_client(settings) as client:
        page = Page(await (await client.get("/connect/nothing")).text())
        img = page.all("img")[0]
        assert img["alt"] == "Acme Books"
        served_logo = await client.get(img["src"])
        assert served_logo.headers["Content-Type"] == "image/svg+xml"
        assert "sandbox" in served_logo.headers["Content-Security-Policy"]
        assert await served_logo.read() == logo.read_bytes()
        css = await (await client.get(page.all("link")[0]["href"])).text()
        # a light accent gets dark text on its buttons
        assert css.startswith(":root{--accent:#ffcc00;--on-accent:#111111}")
    async with broker_client(make_settings()) as plain:
        other = Page(await (await plain.get("/connect/nothing")).text())
        assert other.all("link")[0]["href"] != page.all("link")[0]["href"]
        assert other.all("img") == []


async def test_the_document_declares_the_new_routes_and_field(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert {"/static/{version}/{name}", "/connect/{token}/continue"} <= set(document["paths"])
    fields = document["components"]["schemas"]["CreateConnectSession"]["properties"]
    assert fields["skip_interstitial"]["type"] == "boolean"
    assert "200" in document["paths"]["/oauth/callback/{connector}"]["get"]["responses"]
