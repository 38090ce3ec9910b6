"""The API-key Connect form in a real browser (Debian's headless Chromium, driven by
Playwright): the user types the key, submits, and lands back on the dashboard.

Chromium applies the form page's CSP `form-action` to the redirects that follow a submit, so
the broker's 303 to `return_url` must be allowed by it; a scripted HTTP client would never
notice a blocked redirect."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from broker.config import Settings
from broker.web.app import create_app
from tests.e2e.harness import free_port, serve, start_connect
from tests.helpers import admin

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
BROKER_PORT = free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
DASHBOARD_PORT = free_port()
DASHBOARD = f"http://127.0.0.1:{DASHBOARD_PORT}"  # another origin than the broker's
KEY = "sk_test_BROWSER_CANARY_8f14e45f"
NAVIGATION_TIMEOUT_MS = 15_000  # a guard against a hang: the page is local


def dashboard_app(seen: list[dict[str, str]]) -> web.Application:
    """The dashboard's return page: records what the broker sent the browser back with."""

    async def done(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.Response(
            text=f"<h1 id='result'>{request.query.get('status', '')}</h1>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/connections/done", done)
    return app


@pytest.fixture
async def broker(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> AsyncIterator[list[dict[str, str]]]:
    caplog.set_level(logging.DEBUG)
    seen: list[dict[str, str]] = []
    settings = make_settings(public_url=BROKER_URL, allowed_return_origins=DASHBOARD)
    async with serve(create_app(settings), BROKER_PORT), serve(dashboard_app(seen), DASHBOARD_PORT):
        yield seen
    assert KEY not in caplog.text


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def test_the_form_returns_to_the_dashboard(
    broker: list[dict[str, str]], chromium: Browser, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as api:
        connect_url = await start_connect(
            api, BROKER_URL, "stripe", return_url=f"{DASHBOARD}/connections/done?from=broker"
        )
    page = await chromium.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto(connect_url)
    await page.screenshot(path=tmp_path / "connect-form.png")
    assert await page.title() == "Connect Stripe"

    await page.fill("#api_key", KEY)
    await page.click("button[type=submit]")
    try:
        await page.wait_for_url(f"{DASHBOARD}/connections/done?**", timeout=NAVIGATION_TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"the browser stayed at {page.url}; its console said: {console}")
    assert await page.inner_text("#result") == "connected"
    await page.screenshot(path=tmp_path / "dashboard.png")

    assert len(broker) == 1
    assert broker[0]["from"] == "broker"
    async with aiohttp.ClientSession(base_url=BROKER_URL, headers=admin()) as api:
        view: dict[str, Any] = await (
            await api.get(f"/v1/connections/{broker[0]['connection_id']}")
        ).json()
    assert view["settings"]["api_key"] == "********"
