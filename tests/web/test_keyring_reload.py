"""A serving broker follows its keyring file (no restart) and says which keyring it uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from broker.crypto import Keyring, save_keyring

Client = TestClient[Any, Any]


async def ready(client: Client) -> dict[str, Any]:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def wait_for_primary(client: Client, primary: str) -> dict[str, Any]:
    for _ in range(50):
        body = await ready(client)
        if body["keyring"]["primary"] == primary:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"primary never became {primary}: {body}")


async def test_the_keyring_file_is_followed(client: Client, keyring_file: Path) -> None:
    assert (await ready(client))["keyring"] == {
        "primary": "k1",
        "keys": ["k1"],
        "reload_error": None,
    }
    save_keyring(keyring_file, Keyring.load(keyring_file).with_key("k2").promoted("k2"))
    body = await wait_for_primary(client, "k2")
    assert body["keyring"]["keys"] == ["k1", "k2"]

    keyring_file.write_text('{"primary": "k9", "keys": {}}')  # a broken edit
    for _ in range(50):
        body = await ready(client)
        if body["keyring"]["reload_error"]:
            break
        await asyncio.sleep(0.1)
    assert body["keyring"]["primary"] == "k2"  # still serving with the last good keyring
    assert "no keys" in body["keyring"]["reload_error"]
