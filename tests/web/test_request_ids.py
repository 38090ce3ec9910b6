"""Request ids over real HTTP: a well-formed `X-Request-Id` is echoed and names the request's
log lines, anything else is replaced; every response carries one; log lines name route
templates, never paths."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from broker.services import connections
from tests.helpers import admin, broker_logging, json_lines
from tests.web.test_connect_form import new_link

Client = TestClient[Any, Any]
HEX_ID = re.compile(r"[0-9a-f]{32}")
CANARY = "sk_test_REQUEST_ID_CANARY_5d4c3b2a"
ACCESS = "aiohttp.access"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stripe_connection(client: Client) -> str:
    resp = await client.post(
        "/v1/connections",
        headers=admin(),
        json={"tenant_id": "t-ids", "connector": "stripe", "settings": {"api_key": CANARY}},
    )
    assert resp.status == 201
    return str((await resp.json())["id"])


def access_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if line["logger"] == ACCESS]


async def test_a_well_formed_id_is_echoed_and_names_every_line(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await stripe_connection(client)
    with broker_logging() as out:
        resp = await client.get(
            f"/v1/connections/{cid}", headers={**admin(), "X-Request-Id": "trace-42.a_B"}
        )
        assert resp.status == 200 and resp.headers["X-Request-Id"] == "trace-42.a_B"

        async def broken(*_: object) -> None:
            raise RuntimeError(CANARY)

        monkeypatch.setattr(connections, "get", broken)
        failed = await client.get(
            f"/v1/connections/{cid}", headers={**admin(), "X-Request-Id": "trace-43"}
        )
        assert failed.status == 500 and failed.headers["X-Request-Id"] == "trace-43"
    ok, app_line, failed_access = json_lines(out.getvalue())
    assert ok["logger"] == ACCESS
    assert ok["request_id"] == "trace-42.a_B"
    assert ok["route"] == "/v1/connections/{connection_id}"
    assert (ok["method"], ok["status"]) == ("GET", 200)
    assert isinstance(ok["duration_ms"], float) and ok["duration_ms"] >= 0
    assert (ok["connection_id"], ok["tenant_id"]) == (cid, "t-ids")
    assert cid not in ok["message"]  # the route template, not the path

    # an application line written while handling the request carries its id and route
    assert app_line["logger"] == "broker.web" and app_line["level"] == "ERROR"
    assert app_line["request_id"] == "trace-43"
    assert app_line["route"] == "/v1/connections/{connection_id}"
    assert "RuntimeError (text withheld)" in app_line["exception"]
    assert failed_access["request_id"] == "trace-43" and failed_access["status"] == 500
    assert CANARY not in out.getvalue()


async def test_a_runtime_line_names_the_grants_connection(client: Client) -> None:
    cid = await stripe_connection(client)
    minted = await client.post("/v1/runtime-tokens", headers=admin(), json={"connection_id": cid})
    token = (await minted.json())["token"]
    with broker_logging() as out:
        ok = await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
        denied = await client.get("/v1/runtime/secrets/client_secret", headers=bearer(token))
    assert ok.status == 200 and HEX_ID.fullmatch(ok.headers["X-Request-Id"])
    assert denied.status == 403
    (line,) = access_lines(out.getvalue())  # a successful read writes no access line
    assert line["request_id"] == denied.headers["X-Request-Id"] != ok.headers["X-Request-Id"]
    assert line["route"] == "/v1/runtime/secrets/{name}"
    assert (line["connection_id"], line["tenant_id"], line["status"]) == (cid, "t-ids", 403)
    assert token not in out.getvalue() and CANARY not in out.getvalue()


MALFORMED = [
    b"",
    b"0" * 129,
    b"a b",
    b"a\tb",
    b'a"b',
    b"a;b",
    b"a,b",
    b"a%0d%0aSet-Cookie:%20x=1",
    b"<script>alert(1)</script>",
    "\u00fcn\u00ef".encode("latin-1"),
    b'x", "level": "forged',
]


@pytest.mark.parametrize("value", MALFORMED)
async def test_a_malformed_id_is_replaced(client: Client, value: bytes) -> None:
    """Sent on a raw socket, as an attacker would (an HTTP client refuses some of these)."""
    with broker_logging() as out:
        status, headers = await raw_get(client, b"/nowhere", b"X-Request-Id: " + value)
    made = headers[b"x-request-id"]
    assert status == 404 and HEX_ID.fullmatch(made.decode())
    assert b"set-cookie" not in headers
    (line,) = access_lines(out.getvalue())
    assert line["request_id"] == made.decode() and line["route"] == "unmatched"
    if value:
        assert value.decode("latin-1") not in out.getvalue()


async def test_a_header_line_break_never_reaches_the_response(client: Client) -> None:
    """A bare CR inside the value: refused by the parser, or at most a new id; never a
    header of the client's making in the answer."""
    status, headers = await raw_get(client, b"/healthz", b"X-Request-Id: abc\rSet-Cookie: x=1")
    assert b"set-cookie" not in headers
    assert status == 400 or HEX_ID.fullmatch(headers[b"x-request-id"].decode())


async def test_every_response_carries_an_id(client: Client) -> None:
    link = await new_link(client)
    token = link.rsplit("/", 1)[1]
    app = {"client_id": "ids-client", "client_secret": "ids-secret-0123456789"}
    assert (await client.put("/v1/oauth-apps/github_app", headers=admin(), json=app)).status == 200
    session = await client.post(
        "/v1/connect-sessions",
        headers=admin(),
        json={
            "tenant_id": "t-ids",
            "connector": "github",
            "return_url": "http://127.0.0.1:8080/",
            "skip_interstitial": True,
        },
    )
    oauth_link = "/connect/" + (await session.json())["connect_url"].rsplit("/", 1)[1]
    with broker_logging() as out:
        answers = [
            await client.get("/healthz"),
            await client.get("/metrics"),
            await client.get("/nowhere/" + token),  # 404 JSON
            await client.delete("/healthz"),  # 405
            await client.get("/v1/connectors"),  # 401
            await client.post("/v1/connections", headers=admin(), data=b"{"),  # 400
            await client.get(link),  # the settings form page
            await client.get("/connect/" + "x" * 40),  # the dead-link page
            await client.post(link, data={"api_key": ""}),  # the form again, with problems
            await client.get(oauth_link, allow_redirects=False),  # 302 to the provider
        ]
        state = parse_qs(urlsplit(answers[-1].headers["Location"]).query)["state"][0]
        answers.append(
            await client.get(
                f"/oauth/callback/github?state={state}&error=access_denied",
                allow_redirects=False,
            )
        )
        answers.append(await client.get("/oauth/callback/github?state=made-up"))  # 400 page
    statuses = [a.status for a in answers]
    assert statuses == [200, 200, 404, 405, 401, 400, 200, 404, 400, 302, 302, 400]
    ids = [a.headers.get("X-Request-Id", "") for a in answers]
    assert all(HEX_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    routes = {line["route"] for line in access_lines(out.getvalue())}
    assert {"/connect/{token}", "/oauth/callback/{connector}", "unmatched"} <= routes
    assert token not in out.getvalue() and state not in out.getvalue()


async def test_the_text_format_names_the_request(client: Client) -> None:
    with broker_logging("text", "INFO") as out:
        resp = await client.get("/nowhere", headers={"X-Request-Id": "text-1"})
    assert resp.headers["X-Request-Id"] == "text-1"
    (line,) = out.getvalue().splitlines()
    assert re.search(
        r' INFO aiohttp\.access \S+ "GET unmatched" 404 [\d.]+ms \[request_id=text-1\]$', line
    )


async def raw_get(client: Client, path: bytes, header: bytes) -> tuple[int, dict[bytes, bytes]]:
    """GET with one header line sent as given; the status and the answer's headers."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split(b" ")[1]), headers


async def test_the_document_declares_the_header_on_every_answer(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    answers = [
        answer
        for operations in document["paths"].values()
        for operation in operations.values()
        for answer in operation["responses"].values()
    ]
    assert len(answers) > 50
    ref = {"$ref": "#/components/headers/RequestId"}
    assert all(answer["headers"]["X-Request-Id"] == ref for answer in answers)
    assert document["components"]["headers"]["RequestId"]["required"] is True
