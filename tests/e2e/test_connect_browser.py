"""The Connect pages in a real browser: Debian's headless Chromium driven by Playwright, the
npm OAuth server's own login and consent pages, a fake runtime for testConnection and a
dashboard return page, all on loopback.

Chromium is what checks what an HTTP client cannot: the CSP (`form-action` applies to the
redirects after a submit; no inline script may run), the pages' script, their layout at
360 px, and accessibility (axe-core, run in the page). Every page is photographed under the
test's tmp_path; with BROKER_UPDATE_SCREENSHOTS=1 the two README pictures in docs/img are
written again.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    ViewportSize,
    async_playwright,
    expect,
)

from broker.config import load_settings
from broker.crypto import Keyring, save_keyring
from broker.services import connections
from broker.web.app import create_app
from broker.web.settings_form import html_pattern
from broker.web.state import CONTEXT
from tests.e2e.harness import (
    free_port,
    oauth_manifest,
    peer_client,
    query_of,
    serve,
    start_connect,
    write_connectors,
)
from tests.helpers import ADMIN_TOKEN, admin, served
from tests.peers.oidc import DEV_PASSWORD, PEER_DIR, OidcPeer, oidc_peer_fixture
from tests.web.connect_pages import FakeRuntime

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"
# no sandbox (root in a container), and nothing that reaches out beyond loopback
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = PEER_DIR / "node_modules" / "axe-core" / "axe.min.js"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
BROKER_PORT = free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
DASHBOARD_PORT = free_port()
DASHBOARD = f"http://127.0.0.1:{DASHBOARD_PORT}"  # another origin than the broker's
RETURN_URL = f"{DASHBOARD}/connections/done"
CLIENT_SECRET = "pages-client-secret-CANARY-1f0e3dad"
WRONG_KEY = "sk_test_WRONG_CANARY_8f14e45f"
RIGHT_KEY = "sk_test_good_CANARY_c9f0f895"
OLD_WEBHOOK_SECRET = "whsec_OLD_CANARY_45c48cce"
NEW_WEBHOOK_SECRET = "whsec_NEW_CANARY_d3d94468"
CANARIES = (CLIENT_SECRET, WRONG_KEY, RIGHT_KEY, OLD_WEBHOOK_SECRET, NEW_WEBHOOK_SECRET)
TIMEOUT_MS = 15_000  # a guard against a hang: every page is local
NARROW: ViewportSize = {"width": 360, "height": 740}
WIDE: ViewportSize = {"width": 900, "height": 800}

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "pages-client",
                "client_secret_basic",
                BROKER_URL,
                "acme-id",
                client_secret=CLIENT_SECRET,
            )
        ],
        "pkceRequired": True,
    },
    scope="module",
)


class Dashboard:
    """The dashboard's return page: records what the broker sent the browser back with."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_get("/connections/done", self.done)

    async def done(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.query))
        return web.Response(
            text=f"<h1 id='result'>{request.query.get('status', '')}</h1>", content_type="text/html"
        )


class Stack:
    def __init__(self, app: web.Application, dashboard: Dashboard, browser: Browser) -> None:
        self.app = app
        self.dashboard = dashboard
        self.browser = browser


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(oidc: OidcPeer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One broker, dashboard, runtime and Chromium for the whole module (a browser start is
    the slow part)."""
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run ./dev setup (npm ci in {PEER_DIR})")
    folder = tmp_path_factory.mktemp("broker")
    save_keyring(folder / "keyring.json", Keyring.generate("k1"))
    manifest = oauth_manifest("acme-id", oidc, scopes=["openid", "offline_access", "profile"])
    manifest["name"] = "Acme Accounts"
    settings = load_settings(
        store=f"sqlite:///{folder / 'broker.db'}",
        keyring_file=folder / "keyring.json",
        admin_token=ADMIN_TOKEN,
        public_url=BROKER_URL,
        allowed_return_origins=DASHBOARD,
        connectors_dirs=str(write_connectors(folder / "connectors", [manifest])),
        brand_name="Ledgerly",
    )
    runtime, dashboard = FakeRuntime(), Dashboard()
    async with served(runtime.app) as runtime_url:
        app = create_app(settings.model_copy(update={"runtime_url": runtime_url}))
        async with (
            serve(app, BROKER_PORT),
            serve(dashboard.app, DASHBOARD_PORT),
            aiohttp.ClientSession(headers=admin()) as api,
            async_playwright() as playwright,
        ):
            app_body = {"client_id": "pages-client", "client_secret": CLIENT_SECRET}
            resp = await api.put(f"{BROKER_URL}/v1/oauth-apps/acme_id", json=app_body)
            assert resp.status == 200
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield Stack(app, dashboard, browser)
            await browser.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for canary in CANARIES:
        assert canary not in caplog.text


async def only_loopback(route: Route) -> None:
    # the OAuth server's own pages import a web font; nothing may leave the machine
    host = urlsplit(route.request.url).hostname
    await (route.continue_() if host == "127.0.0.1" else route.abort())


@pytest_asyncio.fixture(loop_scope="module")
async def context(stack: Stack, request: pytest.FixtureRequest) -> AsyncIterator[BrowserContext]:
    viewport: ViewportSize = getattr(request, "param", WIDE)
    ctx = await stack.browser.new_context(
        viewport=viewport, permissions=["clipboard-read", "clipboard-write"]
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    await ctx.route("**/*", only_loopback)
    yield ctx
    await ctx.close()


async def new_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A tab, and the console's errors (a CSP refusal shows up there)."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors


AXE_RUN = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
    .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(" "))}))"""


async def check_page(page: Page, errors: list[str], name: str, out: Path) -> None:
    """One broker page as a browser has it: photographed; styled by our stylesheet, whatever
    it loaded from the broker only; nothing refused by the CSP; no horizontal scrolling at
    its width; no serious or critical accessibility violation."""
    await page.screenshot(path=out / f"{name}.png", full_page=True)
    loaded = await page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    # (Chromium asks for /favicon.ico on its own)
    assert all(url.startswith(BROKER_URL + "/") for url in loaded), loaded
    assert len([url for url in loaded if url.startswith(BROKER_URL + "/static/")]) == 2
    assert await page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") in (
        "576px",
        "none",  # at 360 px the card spans the screen
    )
    assert not [e for e in errors if "Content Security Policy" in e], errors
    viewport = page.viewport_size
    assert viewport is not None
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    # evaluated rather than added as a <script> tag: the page's CSP refuses inline scripts
    await page.evaluate(AXE.read_text())
    violations = await page.evaluate(AXE_RUN)
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], serious


def update_docs() -> bool:
    return os.environ.get("BROKER_UPDATE_SCREENSHOTS") == "1"


async def link(connector: str, **body: Any) -> str:
    async with aiohttp.ClientSession() as api:
        return await start_connect(api, BROKER_URL, connector, return_url=RETURN_URL, **body)


async def tenant_connections(stack: Stack) -> list[str]:
    ctx = stack.app[CONTEXT]
    return [c.id for c in await connections.list_for_tenant(ctx, "tenant-a")]


async def through_the_provider(page: Page, *, allow: bool) -> None:
    """The interstitial's button, then the OAuth server's real login and consent pages (or
    its cancel link, which answers access_denied)."""
    await page.click("#continue button[type=submit]")
    await page.wait_for_selector("input[name=login]")
    if not allow:
        await page.click("a[href*='/abort']")
        return
    await page.fill("input[name=login]", "alice")
    await page.fill("input[name=password]", DEV_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
    await page.click("button[type=submit]")


async def test_oauth_through_the_interstitial(
    stack: Stack, context: BrowserContext, oidc: OidcPeer, tmp_path: Path, logs: None
) -> None:
    page, errors = await new_page(context)
    await page.goto(await link("acme-id", skip_interstitial=False))
    assert await page.title() == "Connect Acme Accounts"
    assert await page.inner_text("#provider-host") == urlsplit(oidc.issuer).netloc
    scopes = await page.locator("#scopes li").all_inner_texts()
    assert scopes == ["openid", "offline_access", "profile"]
    await check_page(page, errors, "interstitial", tmp_path)
    if update_docs():
        await page.screenshot(path=DOCS_IMG / "connect-interstitial.png")
    await through_the_provider(page, allow=True)
    await page.wait_for_url(f"{RETURN_URL}?**")
    assert await page.inner_text("#result") == "connected"
    result = stack.dashboard.seen[-1]
    async with aiohttp.ClientSession(headers=admin()) as api:
        view = await (
            await api.get(f"{BROKER_URL}/v1/connections/{result['connection_id']}")
        ).json()
    assert (view["connector"], view["status"]) == ("acme-id", "active")
    assert view["oauth"]["scopes"] and view["oauth"]["has_refresh_token"]


async def test_api_key_form_wrong_then_right_key(
    stack: Stack, context: BrowserContext, tmp_path: Path, logs: None
) -> None:
    before = await tenant_connections(stack)  # the module's other tests connect too
    page, errors = await new_page(context)
    await page.goto(await link("stripe"))
    assert await page.title() == "Connect Stripe"
    await check_page(page, errors, "form", tmp_path)
    if update_docs():
        await page.screenshot(path=DOCS_IMG / "connect-form.png")
    shown = await page.input_value("#webhook-url")
    await page.click("button[data-copy]")
    await expect(page.locator("#webhook-url-status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == shown
    await page.fill("#api_key", WRONG_KEY)
    reveal = page.locator("button[data-reveal][aria-controls=api_key]")
    await reveal.click()
    assert await page.get_attribute("#api_key", "type") == "text"
    await reveal.click()
    assert await page.get_attribute("#api_key", "type") == "password"
    await page.fill("#webhook_secret", OLD_WEBHOOK_SECRET)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#problems")
    assert FakeRuntime.MESSAGE in await page.inner_text("#problems")
    assert await page.input_value("#api_key") == ""  # never sent back
    assert await page.input_value("#webhook_secret") == ""
    assert WRONG_KEY not in await page.content()
    assert await tenant_connections(stack) == before
    await check_page(page, errors, "form-refused", tmp_path)

    await page.fill("#api_key", RIGHT_KEY)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{RETURN_URL}?**")
    assert await page.inner_text("#result") == "connected"
    connection_id = stack.dashboard.seen[-1]["connection_id"]
    async with aiohttp.ClientSession(headers=admin()) as api:
        view = await (await api.get(f"{BROKER_URL}/v1/connections/{connection_id}")).json()
    assert view["webhook_url"] == shown
    assert view["settings"]["api_key"] == "********"


async def test_used_expired_and_denied_pages(
    stack: Stack, context: BrowserContext, tmp_path: Path, logs: None
) -> None:
    page, errors = await new_page(context)
    used = await link("stripe")
    async with aiohttp.ClientSession() as browserless:
        done = await browserless.post(used, data={"api_key": RIGHT_KEY}, allow_redirects=False)
    assert done.status == 303
    await page.goto(used)
    assert await page.inner_text("h1") == "This link was already used"
    await check_page(page, errors, "used", tmp_path)
    await page.click("#back")
    await page.wait_for_url(f"{RETURN_URL}?**")
    assert stack.dashboard.seen[-1] == query_of(done.headers["Location"])

    expired = await link("stripe")
    ctx = stack.app[CONTEXT]
    real_clock = ctx.clock
    ctx.clock = lambda: real_clock() + 31 * 60
    try:
        await page.goto(expired)
    finally:
        ctx.clock = real_clock
    assert await page.inner_text("h1") == "This link has expired"
    await check_page(page, errors, "expired", tmp_path)
    back = await page.get_attribute("#back", "href")
    assert back is not None and query_of(back)["error"] == "session_expired"

    await page.goto(await link("acme-id", skip_interstitial=False))
    await through_the_provider(page, allow=False)
    await page.wait_for_selector("h1:has-text('Access was not granted')")
    await check_page(page, errors, "denied", tmp_path)
    await page.click("#back")
    await page.wait_for_url(f"{RETURN_URL}?**")
    assert stack.dashboard.seen[-1] == {"status": "error", "error": "access_denied"}


async def test_reconnect_changes_one_secret_and_keeps_the_other(
    stack: Stack, context: BrowserContext, tmp_path: Path, logs: None
) -> None:
    body = {
        "tenant_id": "tenant-r",
        "connector": "stripe",
        "settings": {"api_key": RIGHT_KEY, "webhook_secret": OLD_WEBHOOK_SECRET},
    }
    async with aiohttp.ClientSession(headers=admin()) as api:
        created = await (await api.post(f"{BROKER_URL}/v1/connections", json=body)).json()
    connection_id = created["id"]
    page, errors = await new_page(context)
    await page.goto(await link("stripe", tenant_id="tenant-r", connection_id=connection_id))
    assert connection_id in await page.inner_text("#reconnect")
    assert (await page.input_value("#webhook-url")).endswith(f"connection_id={connection_id}")
    await check_page(page, errors, "reconnect", tmp_path)
    await page.fill("#webhook_secret", NEW_WEBHOOK_SECRET)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{RETURN_URL}?**")
    assert stack.dashboard.seen[-1] == {"status": "connected", "connection_id": connection_id}
    conn, _ = await connections.get(stack.app[CONTEXT], connection_id)
    assert conn.secrets == {"api_key": RIGHT_KEY, "webhook_secret": NEW_WEBHOOK_SECRET}
    assert conn.settings_version == 2


@pytest.mark.parametrize("context", [NARROW], indirect=True)
async def test_the_pages_at_360_px(
    stack: Stack, context: BrowserContext, tmp_path: Path, logs: None
) -> None:
    """Every kind of page on a phone: readable, nothing wider than the screen."""
    page, errors = await new_page(context)
    await page.goto(await link("stripe"))
    await check_page(page, errors, "form-360", tmp_path)
    await page.fill("#api_key", WRONG_KEY)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#problems")
    await check_page(page, errors, "form-refused-360", tmp_path)
    await page.goto(f"{BROKER_URL}/connect/no-such-link")
    await check_page(page, errors, "unknown-360", tmp_path)
    await page.goto(await link("acme-id", skip_interstitial=False))
    await check_page(page, errors, "interstitial-360", tmp_path)
    await through_the_provider(page, allow=False)
    await page.wait_for_selector("h1:has-text('Access was not granted')")
    await check_page(page, errors, "denied-360", tmp_path)


PATTERNS = [
    "^[A-Za-z0-9_-]{20,100}$",
    "^[a-z0-9][a-z0-9-]*$",
    "^SG\\.",
    "^us[0-9]{1,3}$",
    "[(|)/{}]x",
    "[-a]b",
    "^(common|[0-9a-f]{8}-[0-9a-f]{4})$",
]
SAMPLES = ["", "abc", "a-b", "A_b-1" * 5, "SG.key", "xSG.", "us123", "us1234", "(x", "3-z", "-b"]


async def test_patterns_mean_in_the_browser_what_they_mean_on_the_server(
    context: BrowserContext,
) -> None:
    """An input's `pattern` is compiled by the browser with the `v` flag and matched against
    the whole value; the server searches with JSON Schema's meaning. Same verdict on each."""
    page, _ = await new_page(context)
    for pattern in PATTERNS:
        for sample in SAMPLES:
            browser = await page.evaluate(
                "([p, s]) => new RegExp('^(?:' + p + ')$', 'v').test(s)",
                [html_pattern(pattern), sample],
            )
            assert browser == (re.search(pattern, sample) is not None), (pattern, sample)
