"""Fixtures shared across the suite: a keyring on disk, settings, and a broker over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from broker.config import Settings, load_settings
from broker.crypto import Keyring, save_keyring
from tests.helpers import ADMIN_TOKEN, broker_client


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    save_keyring(path, Keyring.generate("k1"))
    return path


@pytest.fixture
def make_settings(tmp_path: Path, keyring_file: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "store": f"sqlite:///{tmp_path / 'broker.db'}",
            "keyring_file": keyring_file,
            "admin_token": ADMIN_TOKEN,
            "public_url": "http://127.0.0.1:8080",
            # off unless a test is about them: a suite's requests come from one address
            "connect_rate_limit": 0,
            # a test's app is cleaned up by the test, not stopped by an orchestrator
            "shutdown_grace": 5,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[TestClient[Any, Any]]:
    """The broker app on a real loopback socket, with the embedded SQLite store."""
    async with broker_client(make_settings()) as test_client:
        yield test_client
