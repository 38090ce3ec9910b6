"""A provider's own SDK pointed at the broker: the runtime token sent as the SDK sends its
API key, where the connector's httpAuth puts the real credential (Basic for Twilio or
Mailchimp, a header for Postmark, a query parameter), is accepted on the proxy's paths only;
the provider gets exactly the stored credential and no trace of the runtime token."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from broker import metrics
from broker.crypto.runtime_tokens import create_runtime_token
from broker.web.state import CONTEXT, KEYRING
from tests.helpers import admin
from tests.web.proxy.conftest import CANARY, EXPECTED, Client, basic, runtime_token_for
from tests.web.proxy.fake_api import FakeApi, Received

Fake = tuple[FakeApi, int]
BODY = b'{"to": "ada@example.com"}'


# where each connector's SDK puts its key: (kind: header or query, name, value with {t})
SDK_WAY: dict[str, tuple[str, str, str]] = {
    "px-bearer": ("header", "Authorization", "Bearer {t}"),
    "px-basic": ("header", "Authorization", "basic:AC-sent-by-the-sdk:{t}"),
    "px-basic-user": ("header", "Authorization", "basic:{t}:"),
    "px-header": ("header", "X-Api-Key", "{t}"),
    "px-query": ("query", "api_key", "{t}"),
}


def _value(template: str, token: str) -> str:
    if template.startswith("basic:"):
        user, password = template.removeprefix("basic:").format(t=token).split(":", 1)
        return basic(user, password)
    return template.format(t=token)


async def _call(
    broker: Client, port: int, form: str, where: tuple[str, str, str], token: str
) -> tuple[int, dict[str, object]]:
    """A POST to /echo?limit=3 carrying `token` at `where`, in `form`."""
    kind, name, template = where
    value = _value(template, token)
    headers = {"Content-Type": "application/json"}
    query = "limit=3"
    if kind == "header":
        headers[name] = value
    else:
        query += f"&{name}={value}"
    target = f"http://127.0.0.2:{port}/echo?{query}"
    if form == "header":
        headers["Broker-Target"] = target
        resp = await broker.post("/v1/runtime/proxy", headers=headers, data=BODY)
    else:
        url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo?{query}"
        resp = await broker.post(url, headers=headers, data=BODY)
    return resp.status, await resp.json()


def _no_trace(got: Received, token: str) -> None:
    assert token not in str(list(got.headers.items()))
    assert token not in str(list(got.query.items()))
    assert token.encode() not in got.body
    assert got.body == BODY


@pytest.mark.parametrize("connector", list(SDK_WAY))
@pytest.mark.parametrize("form", ["path", "header"])
async def test_the_token_where_the_sdk_sends_its_key_is_accepted(
    broker: Client, fake: Fake, connector: str, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api, port = fake
    token = await runtime_token_for(broker, connector)
    status, answer = await _call(broker, port, form, SDK_WAY[connector], token)
    assert status == 200, answer
    (got,) = api.received
    _no_trace(got, token)
    assert got.query["limit"] == "3"
    if connector == "px-query":
        assert got.query.getall("api_key") == [CANARY]  # replaced, not appended
        assert "Authorization" not in got.headers
    else:
        name, value = EXPECTED[connector]
        assert got.headers.getall(name) == [value]
        assert "api_key" not in got.query
        assert not ({"Authorization", "X-Api-Key"} - {name}) & set(got.headers)
    await broker.app[CONTEXT].audit.flush()
    resp = await broker.get("/v1/audit?tenant_id=tenant-a", headers=admin())
    assert token not in await resp.text()
    assert token not in caplog.text and CANARY not in caplog.text
    assert token not in metrics.render().decode()


WRONG_PLACES = [
    ("px-bearer", ("header", "X-Api-Key", "{t}")),  # an arbitrary header, bearer connector
    ("px-bearer", ("header", "Authorization", "basic:{t}:")),
    ("px-bearer", ("query", "api_key", "{t}")),
    ("px-header", ("header", "X-Other-Key", "{t}")),
    ("px-header", ("header", "Authorization", "basic:x:{t}")),
    ("px-query", ("query", "key", "{t}")),
    ("px-query", ("header", "X-Api-Key", "{t}")),
    ("px-basic", ("header", "Authorization", "basic:{t}:")),  # the password is the key
    ("px-basic-user", ("header", "Authorization", "basic:x:{t}")),  # the username is
    ("px-none", ("header", "X-Api-Key", "{t}")),
]


@pytest.mark.parametrize(("connector", "where"), WRONG_PLACES)
async def test_a_token_elsewhere_than_the_credential_goes_is_refused(
    broker: Client, fake: Fake, connector: str, where: tuple[str, str, str]
) -> None:
    api, port = fake
    token = await runtime_token_for(broker, connector)
    for form in ("path", "header"):
        status, answer = await _call(broker, port, form, where, token)
        assert status == 401, answer
        assert answer["error"] == "unauthorized"
        assert token not in str(answer)
    assert api.received == []


async def test_a_token_in_two_places_is_refused(broker: Client, fake: Fake) -> None:
    api, port = fake
    token = await runtime_token_for(broker, "px-header")
    resp = await broker.get(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo",
        headers={"Authorization": f"Bearer {token}", "X-Api-Key": token},
    )
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"
    assert api.received == []


def _expired(broker: Client, connector: str) -> str:
    token, _ = create_runtime_token(
        broker.app[KEYRING].current,
        connection_id="conn-gone",
        tenant_id="tenant-a",
        connector=connector,
        secret_names=frozenset(),
        oauth=False,
        now=int(time.time()) - 3600,
        ttl=60,
    )
    return token


@pytest.mark.parametrize("connector", list(SDK_WAY))
async def test_a_wrong_or_expired_token_in_the_sdk_place_is_refused(
    broker: Client, fake: Fake, connector: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api, port = fake
    good = await runtime_token_for(broker, connector)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for token in (forged, _expired(broker, connector), "brt1.not-a-token"):
        for form in ("path", "header"):
            status, answer = await _call(broker, port, form, SDK_WAY[connector], token)
            assert status == 401, answer
            assert answer["error"] == "unauthorized"
            assert token not in str(answer)
        assert token not in caplog.text
    assert api.received == []


@pytest.mark.parametrize("value", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()])
async def test_malformed_basic_credentials_are_refused(
    broker: Client, fake: Fake, value: str
) -> None:
    _, port = fake
    resp = await broker.get(
        f"/v1/runtime/proxy/http/127.0.0.2:{port}/echo", headers={"Authorization": value}
    )
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"


async def test_other_runtime_routes_take_only_a_bearer_token(broker: Client) -> None:
    token = await runtime_token_for(broker, "px-basic")
    for headers in (
        {"Authorization": basic("x", token)},
        {"X-Api-Key": token},
    ):
        resp = await broker.get("/v1/runtime/secrets/api_key", headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"] == "unauthorized"
    resp = await broker.get(f"/v1/runtime/secrets/api_key?api_key={token}")
    assert resp.status == 401
