"""A serving broker follows its keyring file (no restart) and says which keyring it uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.crypto import Keyring, KeyringFile, save_keyring
from tests.helpers import background_errors

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


async def test_the_file_watch_outlives_an_unexpected_error(
    client: Client,
    keyring_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One failed look at the file (here a stat that raises what nobody expected) must not
    end the watch: the next edit is still followed."""
    monkeypatch.setattr("broker.web.app.KEYRING_POLL", 0.05)
    looked = asyncio.Event()
    real_changed = KeyringFile.changed

    def changed(holder: KeyringFile) -> bool:
        if not looked.is_set():
            looked.set()
            raise RuntimeError("CANARY_keyring_1a79a4d60de6718e")
        return real_changed(holder)

    monkeypatch.setattr(KeyringFile, "changed", changed)
    before = background_errors("keyring-watch")
    await looked.wait()
    save_keyring(keyring_file, Keyring.load(keyring_file).with_key("k2").promoted("k2"))
    await wait_for_primary(client, "k2")
    assert background_errors("keyring-watch") == before + 1
    assert "RuntimeError" in caplog.text and "CANARY" not in caplog.text
