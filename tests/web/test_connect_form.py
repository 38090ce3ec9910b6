"""The API-key side of the Connect button: a settings form behind the one-time link."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import admin

Client = TestClient[Any, Any]
RETURN = "http://127.0.0.1:8080/done"
CANARY = "sk_test_FORM_CANARY_8b1a9953"


async def new_link(client: Client) -> str:
    resp = await client.post(
        "/v1/connect-sessions",
        headers=admin(),
        json={
            "tenant_id": "tenant-f",
            "connector": "stripe",
            "return_url": RETURN,
        },
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["connect_url"].startswith("http://127.0.0.1:8080/connect/")
    assert body["expires_at"].endswith("Z")
    return "/connect/" + str(body["connect_url"]).rsplit("/", 1)[1]


async def test_form_round_trip(client: Client) -> None:
    path = await new_link(client)
    page = await client.get(path)
    assert page.status == 200
    html = await page.text()
    assert '<input id="api_key" name="api_key" required type="password"' in html
    assert "sk_live_... or sk_test_..." in html
    assert page.headers["Cache-Control"] == "no-store"
    # the 303 after a right key goes to the dashboard: Chromium checks it against form-action
    assert (
        "form-action 'self' http://127.0.0.1:8080;" in page.headers["Content-Security-Policy"] + ";"
    )

    bad = await client.post(path, data={"api_key": "", "webhook_secret": CANARY})
    assert bad.status == 400
    text = await bad.text()
    assert '<p class="field-error" id="api_key-error">is required</p>' in text
    assert CANARY not in text

    done = await client.post(path, data={"api_key": CANARY}, allow_redirects=False)
    assert done.status == 303
    location = done.headers["Location"]
    assert location.startswith(RETURN + "?status=connected&connection_id=conn_")
    connection_id = location.rsplit("=", 1)[1]
    view = await (await client.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert view["tenant_id"] == "tenant-f"
    assert view["settings"]["api_key"] == "********"
    assert (await client.get(path)).status == 404  # the link died with the connection
    assert (await client.post(path, data={"api_key": CANARY})).status == 404


async def test_unknown_links(client: Client) -> None:
    for path in ("/connect/nope", "/connect/" + "x" * 300):
        resp = await client.get(path)
        assert resp.status == 404
        assert "unknown, used or expired" in await resp.text()
