"""The command line: manifest validation, the catalog, keys, and `serve` as a real process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from broker.cli import main
from broker.crypto import Keyring
from broker.manifest import BUNDLED_DIR

BROKEN = Path(__file__).resolve().parents[1] / "manifest" / "broken"
BROKER = [sys.executable, "-m", "broker.cli"]


def test_validate_bundled_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "validate", str(BUNDLED_DIR)]) == 0
    assert "manifests valid" in capsys.readouterr().err


def test_validate_reports_every_problem_with_file_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = json.loads((BROKEN / "11-duplicate-stream-keys.json").read_text())
    manifest = case["manifest"]
    manifest["streams"].append({"key": "late", "mode": "poll", "schedule": "61 * * * *"})
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    good = BUNDLED_DIR / "stripe" / "manifest.json"
    assert main(["manifest", "validate", str(good), str(path)]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert f"{path}: {case['expect_path']}: duplicate stream key" in "\n".join(lines)
    assert any(line.startswith(f"{path}: $.streams[") and "outside 0-59" in line for line in lines)
    assert "1 of 2 manifests valid" in out.err


def test_validate_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "validate", str(tmp_path / "nope.json")]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_connectors_list(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROKER_CONNECTORS_DIRS", raising=False)
    assert main(["connectors", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["KEY", "AUTH", "KIND"]
    assert any(line.split()[:2] == ["stripe", "api_key"] for line in out.splitlines())
    assert any(line.split()[:2] == ["xero", "oauth"] for line in out.splitlines())


def test_connectors_list_refuses_a_broken_extra_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad").mkdir()
    case = json.loads((BROKEN / "13-cron-six-fields.json").read_text())
    case["manifest"]["key"] = "bad"
    (tmp_path / "bad" / "manifest.json").write_text(json.dumps(case["manifest"]))
    monkeypatch.setenv("BROKER_CONNECTORS_DIRS", str(tmp_path))
    assert main(["connectors", "list"]) == 2
    assert case["expect_path"] in capsys.readouterr().err


def test_keys_generate_add_promote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--id", "k1", "--out", str(path)]) == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert main(["keys", "generate", "--out", str(path)]) == 2  # never overwrites
    assert main(["keys", "add", "--file", str(path), "--id", "k2"]) == 0
    ring = Keyring.load(path)
    assert (ring.ids, ring.primary) == (["k1", "k2"], "k1")
    assert main(["keys", "promote", "--file", str(path), "k2"]) == 0
    assert Keyring.load(path).primary == "k2"
    assert main(["keys", "promote", "--file", str(path), "k9"]) != 0
    out = capsys.readouterr()
    for key in ring.keys.values():  # no key material outside `generate` to stdout
        assert key.hex() not in out.out + out.err


def test_serve_refuses_the_crash_point_setting_without_dev(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BROKER_TEST_CRASH_AT", "before_send")
    assert main(["serve"]) == 2
    assert "BROKER_TEST_CRASH_AT" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_dev_on_a_fresh_directory(tmp_path: Path) -> None:
    """The README's run command: `broker serve --dev` from an empty folder serves /healthz."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = spawn([*BROKER, "serve", "--dev", "--port", str(port)], tmp_path, env)
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert json.loads(body) == {"status": "ok"}
        ready = json.loads(_wait_for(f"http://127.0.0.1:{port}/readyz", proc))
        assert ready["status"] == "ready"
        assert (tmp_path / "broker-data" / "keyring.json").is_file()
        assert (tmp_path / "broker-data" / "broker.db").is_file()
        token = (tmp_path / "broker-data" / "admin-token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/connectors", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert len(json.loads(resp.read())["connectors"]) >= 16
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    assert "admin token" in output


ROOT = Path(__file__).resolve().parents[2]


def dev_checkout(tmp_path: Path) -> Path:
    """The `dev` script and pyproject.toml in a folder of their own (the script works in its
    own folder: broker-data lands there), with a venv it takes as installed: its stamp
    matches, and its `broker` is this interpreter's, so nothing is installed."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for name in ("dev", "pyproject.toml"):
        shutil.copy2(ROOT / name, folder / name)
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    broker = venv_bin / "broker"
    broker.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m broker.cli "$@"\n')
    broker.chmod(0o755)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (tmp_path / "venv" / ".installed").write_text(digest + "\n")
    return folder


def run_dev_serve(tmp_path: Path, extra_env: dict[str, str]) -> tuple[Path, str]:
    """`./dev serve --port <free port>`: waits for /healthz, then stops it; (folder, output)."""
    folder, port = dev_checkout(tmp_path), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "PYTHON": sys.executable,
        "BROKER_VENV": str(tmp_path / "venv"),
        **extra_env,
    }
    proc = spawn([str(folder / "dev"), "serve", "--port", str(port)], tmp_path, env)
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert json.loads(body) == {"status": "ok"}
    finally:
        output = stop(proc)  # `dev` execs the broker: the signal reaches it
    assert proc.returncode == 0, output
    return folder, output


def test_dev_serve_with_options_stays_in_dev_mode(tmp_path: Path) -> None:
    # the README's `./dev serve`, with a port added as a new user would
    folder, output = run_dev_serve(tmp_path, {})
    assert "broker (dev): admin token" in output
    assert (folder / "broker-data" / "keyring.json").is_file()


def test_dev_serve_with_a_configured_keyring_is_not_dev_mode(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring.json"
    keyring.write_text(Keyring.generate("k1").to_json())
    keyring.chmod(0o600)
    configured = {
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": "z" * 20,
        "BROKER_STORE": f"sqlite:///{tmp_path / 'broker.db'}",
    }
    folder, output = run_dev_serve(tmp_path, configured)
    assert "broker (dev)" not in output
    assert not (folder / "broker-data").exists()


def spawn(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGINT, as Ctrl-C would: a clean exit, and everything it printed."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=10)[0]


def _wait_for(url: str, proc: subprocess.Popen[str]) -> bytes:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"broker exited: {proc.communicate()[0]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bytes(resp.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")
