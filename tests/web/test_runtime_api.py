"""The runtime API with API-key connections: scoped tokens, grants, tenants never crossing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.crypto import Keyring, save_keyring
from broker.crypto.runtime_tokens import verify_runtime_token
from broker.errors import Unauthorized
from broker.services import records
from broker.services.audit import NAMES_PER_MINUTE
from broker.services.records import Connection
from broker.store import keys
from broker.web.state import CONTEXT, KEYRING
from tests.helpers import admin

Client = TestClient[Any, Any]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def connect(client: Client, tenant: str, connector: str, settings: dict[str, Any]) -> str:
    resp = await client.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": tenant,
            "connector": connector,
            "settings": settings,
        },
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def mint(client: Client, connection_id: str, **body: Any) -> str:
    resp = await client.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": connection_id, **body}
    )
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["expires_at"].endswith("Z") and data["token_id"].startswith("rt_")
    return str(data["token"])


async def test_secrets_get(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = "sk_test_RUNTIME_CANARY_1f2e3d"
    cid = await connect(client, "t1", "stripe", {"api_key": key})
    token = await mint(client, cid)
    resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
    assert resp.status == 200
    assert await resp.json() == {"name": "api_key", "value": key, "version": 1}

    unset = await client.get("/v1/runtime/secrets/webhook_secret", headers=bearer(token))
    assert unset.status == 404 and (await unset.json())["error"] == "not_found"
    for name in ("client_secret", "region", "api_key2", "x" * 300):
        denied = await client.get(f"/v1/runtime/secrets/{name}", headers=bearer(token))
        assert denied.status == 403 and (await denied.json())["error"] == "not_granted"
    not_oauth = await client.get("/v1/runtime/oauth/access-token", headers=bearer(token))
    assert not_oauth.status == 400 and (await not_oauth.json())["error"] == "not_oauth"

    resp = await client.patch(
        f"/v1/connections/{cid}/settings",
        headers=admin(),
        json={"settings": {"api_key": key + "-v2"}},
    )
    assert resp.status == 200
    rotated = await (await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))).json()
    assert rotated == {"name": "api_key", "value": key + "-v2", "version": 2}

    audit = await (
        await client.get(f"/v1/audit?tenant_id=t1&connection_id={cid}", headers=admin())
    ).json()
    reads = [e for e in audit["entries"] if e["action"] == "secret.read"]
    assert {(e["name"], e["outcome"]) for e in reads} >= {
        ("api_key", "ok"),
        ("webhook_secret", "not_found"),
        ("client_secret", "not_granted"),
    }
    assert all(e["actor"].startswith("runtime:rt_") for e in reads)
    assert all(e["first_at"].endswith("Z") and e["first_at"] <= e["at"] for e in reads)
    assert key not in str(audit) and key not in caplog.text and token not in caplog.text

    # one entry a page, by the `next` cursor, gives the same entries in the same order
    paged: list[object] = []
    query = f"/v1/audit?tenant_id=t1&connection_id={cid}&limit=1"
    cursor: str | None = ""
    while cursor is not None:
        page = await (await client.get(f"{query}&before={cursor}", headers=admin())).json()
        paged.extend(page["entries"])
        cursor = page["next"]
    assert paged == audit["entries"] and audit["next"] is None
    for bad in ("x", "1700000000000-zz-1", "1700000000000-0011aabb-1.-1", "1" * 200):
        refused = await client.get(f"{query}&before={bad}", headers=admin())
        assert refused.status == 400 and (await refused.json())["error"] == "invalid_request"


async def test_bad_runtime_tokens(client: Client, keyring_file: Path) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_x"})
    token = await mint(client, cid)
    prefix, key_id, payload, signature = token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad in (
        "",
        "nope",
        token + "x",
        f"{prefix}.{key_id}.{forged_payload}.{signature}",
        f"{prefix}.other.{payload}.{signature}",
        f"brt0.{key_id}.{payload}.{signature}",
        token.replace(".", "..", 1),
    ):
        resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(bad))
        assert resp.status == 401, bad
        assert (await resp.json())["error"] == "unauthorized"
    assert (await client.get("/v1/runtime/secrets/api_key")).status == 401
    assert (await client.get("/v1/runtime/secrets/api_key", headers=admin())).status == 401


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def respelled(token: str) -> list[str]:
    """Other spellings of the token's signature that a lenient base64url decoder reads as the
    same bytes: junk it skips, padding, whitespace, and the last character's two spare bits
    (a 32-byte MAC is 43 characters, 258 bits)."""
    signed, _, signature = token.rpartition(".")
    last = ALPHABET.index(signature[-1])
    spare_bits_set = signature[:-1] + ALPHABET[last ^ 0b01]
    return [
        token + "!!",
        token + "$$$",
        token + "=",
        token + "==",
        f"{signed}.{signature[:20]} {signature[20:]}",
        f"{signed}.{signature[:20]}   {signature[20:]}",  # 46 characters: decodes leniently
        f"{signed}.{signature[:20]} \t {signature[20:]}",
        f"{signed}.{signature[:20]} \t\n{signature[20:]}",
        f"{signed}.{signature[:20]}\n{signature[20:]}===",
        f"{signed}.{signature[:-1]}+{signature[-1]}",
        f"{signed}.{spare_bits_set}",
    ]


async def test_a_token_is_only_accepted_as_minted(client: Client) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_x"})
    token = await mint(client, cid)
    assert (await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))).status == 200
    for variant in respelled(token):
        assert verify_runtime_token_fails(client, variant), repr(variant)
        if "\n" in variant:
            continue  # not sendable in a header; the direct check above covers it
        resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(variant))
        assert resp.status == 401, repr(variant)
        assert (await resp.json())["error"] == "unauthorized"


def verify_runtime_token_fails(client: Client, token: str) -> bool:
    try:
        verify_runtime_token(client.app[KEYRING].current, token, now=time.time())
    except Unauthorized:
        return True
    return False


async def test_token_ttl_bounds_and_expiry(client: Client) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_x"})
    for ttl in (0, 86_401, "60", 1.5, True, -1):
        resp = await client.post(
            "/v1/runtime-tokens", headers=admin(), json={"connection_id": cid, "ttl_seconds": ttl}
        )
        assert resp.status == 400, ttl
    unknown = await client.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": "conn_" + "0" * 26}
    )
    assert unknown.status == 404
    token = await mint(client, cid, ttl_seconds=1)
    assert (await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))).status == 200
    await asyncio.sleep(2.05)
    expired = await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
    assert expired.status == 401 and "expired" in (await expired.json())["message"]


async def test_a_deleted_connection_kills_its_tokens(client: Client) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_x"})
    token = await mint(client, cid)
    assert (await client.delete(f"/v1/connections/{cid}", headers=admin())).status == 200
    resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
    assert resp.status == 401


async def test_a_connection_left_revoked_by_an_interrupted_delete_serves_nothing(
    client: Client,
) -> None:
    key = "sk_test_REVOKED_CANARY_5e6f"
    cid = await connect(client, "t1", "stripe", {"api_key": key})
    token = await mint(client, cid)
    ctx = client.app[CONTEXT]

    async def set_status(status: str, **extra: Any) -> None:
        found = await records.load(ctx.store, keys.connection(cid), Connection)
        assert found is not None
        conn, version = found
        update = {"status": status, **extra}
        await records.save(ctx.store, keys.connection(cid), conn.model_copy(update=update), version)

    # a needs_reauth connection's grant is gone, not its settings: those are still served
    await set_status("needs_reauth")
    resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
    assert resp.status == 200 and (await resp.json())["value"] == key
    # what `events.delete_connection` writes before the record goes: a crash in between
    # leaves it, and a deleted connection must not keep serving its secrets
    await set_status("revoked", events_closed=True)
    resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
    body = await resp.json()
    assert (resp.status, body["error"]) == (409, "needs_reauth"), body
    assert key not in str(body)


async def test_made_up_secret_names_cannot_flood_the_audit_log(client: Client) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_x"})
    token = await mint(client, cid)
    gate = asyncio.Semaphore(32)

    async def ask(name: str) -> None:
        async with gate:
            resp = await client.get(f"/v1/runtime/secrets/{name}", headers=bearer(token))
            assert resp.status == 403

    started = time.time()
    await asyncio.gather(*(ask(f"made-up-{i}") for i in range(10_000)))
    finished = time.time()
    # each minute has its own budget of names; the nameless rest is one entry per flush
    # (one a second, and the query's own)
    minutes = int(finished // 60) - int(started // 60) + 1
    flushes = int(finished - started) + 2
    entries: list[dict[str, Any]] = []
    query, cursor = f"/v1/audit?tenant_id=t1&connection_id={cid}&limit=500", ""
    while cursor is not None:
        page = await (await client.get(f"{query}&before={cursor}", headers=admin())).json()
        entries.extend(page["entries"])
        cursor = page["next"]
    refused = [e for e in entries if e["action"] == "secret.read"]
    named = [e for e in refused if e["name"] is not None]
    assert len(named) <= minutes * NAMES_PER_MINUTE
    assert len(refused) - len(named) <= flushes
    assert all(e["outcome"] == "not_granted" for e in refused)
    assert sum(e["count"] for e in refused) == 10_000  # the rest is counted, not lost


async def test_tokens_rotate_with_the_keyring(client: Client, keyring_file: Path) -> None:
    cid = await connect(client, "t1", "stripe", {"api_key": "sk_test_x"})
    old_token = await mint(client, cid)
    holder = client.app[KEYRING]
    save_keyring(keyring_file, holder.current.with_key("k2").promoted("k2"))
    holder.reload()
    new_token = await mint(client, cid)
    assert new_token.split(".")[1] == "k2"
    for token in (old_token, new_token):  # signed before the promotion: valid until retired
        assert (
            await client.get("/v1/runtime/secrets/api_key", headers=bearer(token))
        ).status == 200
    # re-seal the record under k2 (what `broker keys rewrap` does for every record), then retire
    await client.patch(
        f"/v1/connections/{cid}/settings",
        headers=admin(),
        json={"settings": {"api_key": "sk_test_y"}},
    )
    save_keyring(keyring_file, Keyring.load(keyring_file).without("k1"))
    holder.reload()
    resp = await client.get("/v1/runtime/secrets/api_key", headers=bearer(old_token))
    assert resp.status == 401 and "retired" in (await resp.json())["message"]
    assert (
        await client.get("/v1/runtime/secrets/api_key", headers=bearer(new_token))
    ).status == 200


async def test_tenants_and_connectors_never_cross(client: Client) -> None:
    """Every token against every secret name of every connector: only its own grant answers,
    and only with its own connection's values."""
    connectors = {
        "stripe": lambda t: {"api_key": f"sk_test_{t}", "webhook_secret": f"whsec_{t}"},
        "twilio": lambda t: {"account_sid": "AC" + "0123456789abcdef" * 2, "auth_token": f"tw_{t}"},
        "sendgrid": lambda t: {"api_key": f"SG.{t}"},
    }
    tenants = ["acme", "globex", "initech"]
    owned: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for tenant, (connector, settings) in itertools.product(tenants, connectors.items()):
        values = settings(tenant)
        cid = await connect(client, tenant, connector, values)
        owned[await mint(client, cid)] = (tenant, connector, values)
    catalog = {
        c["key"]: c
        for c in (await (await client.get("/v1/connectors", headers=admin())).json())["connectors"]
    }
    names = {n for key in connectors for n in catalog[key]["settings_schema"]["properties"]}
    for token, (tenant, connector, values) in owned.items():
        granted = set(catalog[connector]["secrets"])
        for name in names:
            resp = await client.get(f"/v1/runtime/secrets/{name}", headers=bearer(token))
            if name in granted and name in values:
                assert resp.status == 200
                assert (await resp.json())["value"] == values[name]
            elif name in granted:
                assert resp.status == 404
            else:
                assert resp.status == 403, (connector, name)
        listed = await (
            await client.get(f"/v1/connections?tenant_id={tenant}", headers=admin())
        ).json()
        assert {c["tenant_id"] for c in listed["connections"]} == {tenant}
        assert len(listed["connections"]) == len(connectors)
