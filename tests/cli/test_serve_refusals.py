"""`broker serve` refusing to start: one message that names every bad setting (and every
problem with the files they name), exit code 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from broker.cli import main

BROKER = [sys.executable, "-m", "broker.cli"]


def refused(cwd: Path, **env: str) -> str:
    """Run `broker serve` with only `env` of the BROKER_* variables; its refusal."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    clean["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [*BROKER, "serve"],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"BROKER_PORT": "eighty"}, "BROKER_PORT"),
        ({"BROKER_STORE": "mysql://db"}, "BROKER_STORE"),
        ({"BROKER_ADMIN_TOKEN": "x" * 20}, "BROKER_KEYRING_FILE: not set"),
        (
            {"BROKER_ADMIN_TOKEN": "x" * 20, "BROKER_KEYRING_FILE": "/nonexistent/k.json"},
            "does not exist",
        ),
    ],
)
def test_serve_refuses_invalid_configuration(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    assert fragment in refused(tmp_path, **env)


def test_serve_refuses_a_corrupt_keyring(tmp_path: Path) -> None:
    keyring = tmp_path / "k.json"
    keyring.write_text('{"primary": "k1", "keys": {"k1": "c2hvcnQ="}}')
    said = refused(tmp_path, BROKER_KEYRING_FILE=str(keyring), BROKER_ADMIN_TOKEN="y" * 20)
    assert "k1" in said


def test_serve_names_every_bad_setting_in_one_message(tmp_path: Path) -> None:
    """Format errors, what `serve` needs, and what the named files hold: all in one refusal,
    so an operator fixes them in one go."""
    keyring = tmp_path / "k.json"
    keyring.write_text("{not json")
    said = refused(
        tmp_path,
        BROKER_PORT="eighty",
        BROKER_STORE="mysql://db",
        BROKER_MAX_BODY_BYTES="-1",
        BROKER_TRUSTED_PROXIES="10.0.0.0/8,not-a-network",
        BROKER_REQUEST_TIMEOUT="soon",
        BROKER_KEYRING_FILE=str(keyring),
        BROKER_CONNECTORS_DIRS=str(tmp_path / "missing"),
    )
    assert said.count("invalid configuration") == 1
    for name in (
        "BROKER_PORT",
        "BROKER_STORE",
        "BROKER_MAX_BODY_BYTES",
        "BROKER_TRUSTED_PROXIES",
        "BROKER_REQUEST_TIMEOUT",
        "BROKER_ADMIN_TOKEN: not set",
        "BROKER_KEYRING_FILE: keyring is not valid JSON",
        "connectors folder does not exist",
    ):
        assert name in said, (name, said)


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    keyring = tmp_path / "k.json"
    main(["keys", "generate", "--out", str(keyring)])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = refused(
            tmp_path,
            BROKER_KEYRING_FILE=str(keyring),
            BROKER_ADMIN_TOKEN="z" * 20,
            BROKER_PORT=str(port),
            BROKER_STORE=f"sqlite:///{tmp_path / 'b.db'}",
        )
    assert f"cannot listen on 127.0.0.1:{port}" in said
