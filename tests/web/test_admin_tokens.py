"""Admin tokens rotate without downtime: several valid at once, hashes in a followed file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.crypto.admin_tokens import hash_line
from broker.web.app import create_app
from tests.helpers import ADMIN_TOKEN, admin

OLD = "old-admin-token-0123456789abcdef"
NEW = "new-admin-token-fedcba9876543210"


def bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a visible change


async def test_hashed_file_rotation(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    token_file = tmp_path / "admin-tokens"
    token_file.write_text(f"# ops rotation 2026-11\n{hash_line(OLD)}\n")
    settings = make_settings(admin_token="", admin_token_file=token_file)
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/v1/connectors", headers=admin(OLD))).status == 200
        assert (await client.get("/v1/connectors", headers=admin(NEW))).status == 401
        bump(token_file, f"{hash_line(OLD)}\n{hash_line(NEW)}\n")  # both valid during the roll
        assert (await client.get("/v1/connectors", headers=admin(NEW))).status == 200
        assert (await client.get("/v1/connectors", headers=admin(OLD))).status == 200
        bump(token_file, f"{hash_line(NEW)}\n")
        assert (await client.get("/v1/connectors", headers=admin(OLD))).status == 401
        assert (await client.get("/v1/connectors", headers=admin(NEW))).status == 200
        bump(token_file, "not a hash\n")  # a broken edit keeps the last good set
        assert (await client.get("/v1/connectors", headers=admin(NEW))).status == 200


async def test_env_list_and_file_together(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    token_file = tmp_path / "admin-tokens"
    token_file.write_text(hash_line(NEW) + "\n")
    settings = make_settings(admin_token=f"{ADMIN_TOKEN},{OLD}", admin_token_file=token_file)
    async with TestClient(TestServer(create_app(settings))) as client:
        for token in (ADMIN_TOKEN, OLD, NEW):
            assert (await client.get("/v1/connectors", headers=admin(token))).status == 200
        assert (await client.get("/v1/connectors", headers=admin("x" * 20))).status == 401


def test_cli_makes_tokens_and_hash_lines() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    made = subprocess.run(
        [sys.executable, "-m", "broker.cli", "admin-token", "new"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.splitlines()
    token = made[0].removeprefix("token: ")
    assert made[1] == f"file line: {hash_line(token)}"
    hashed = subprocess.run(
        [sys.executable, "-m", "broker.cli", "admin-token", "hash"],
        input=token + "\n",
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    assert hashed == hash_line(token)
    short = subprocess.run(
        [sys.executable, "-m", "broker.cli", "admin-token", "hash"],
        input="short\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert short.returncode == 2
