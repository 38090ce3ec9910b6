"""The SDK runs inside connector processes: importing it must load nothing of the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ("broker.runtime", "broker.runtime.testing", "broker.testing")
# the only broker modules the SDK may load: itself, the package root, the pure error tree and
# the pure URL rules (the test runtime refuses what the proxy would)
ALLOWED = {"broker", "broker.errors", "broker.testing"}
PURE_UNITS = ("broker.runtime", "broker.http_rules")
SERVER_ONLY = ("redis", "cryptography", "sqlite3", "jsonschema", "pydantic")


def test_importing_the_sdk_loads_nothing_of_the_server() -> None:
    # a fresh interpreter: this test process has long imported the whole broker
    script = (
        "import importlib, json, sys\n"
        f"for name in {SDK!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-c", script]
    out = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    server = [
        m
        for m in loaded
        if m.split(".")[0] == "broker" and m not in ALLOWED and not m.startswith(PURE_UNITS)
    ]
    assert server == [], f"the SDK imports server modules: {server}"
    third_party = [m for m in loaded if m.split(".")[0] in SERVER_ONLY]
    assert third_party == [], f"the SDK imports server dependencies: {third_party}"


def test_the_documented_path_is_the_test_runtime() -> None:
    import broker.runtime.testing
    import broker.testing

    assert broker.testing.connector_test_runtime is broker.runtime.testing.connector_test_runtime
