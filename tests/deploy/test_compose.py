"""deploy/compose.yaml: valid against the compose-spec schema (the copy check-jsonschema
bundles, `--builtin-schema vendor.compose-spec`: nothing is fetched), and wired as the
deployment needs: two read-only broker replicas, Redis with AOF fsync on every write on a
volume, the keyring as a secret file, the admin token from the environment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.config import Settings
from tests.deploy.files import DEPLOY, load_one, settings_from_env

COMPOSE_FILE = DEPLOY / "compose.yaml"
COMPOSE = load_one(COMPOSE_FILE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BROKERS = {
    name: svc
    for name, svc in SERVICES.items()
    if isinstance(svc.get("build"), dict) and svc["build"].get("dockerfile") == "deploy/Dockerfile"
}
# what the operator exports before `docker compose up` (compose.yaml's ${...:?} names)
OPERATOR_ENV = {
    "BROKER_ADMIN_TOKEN": "an-admin-token-of-32-characters!",
    "BROKER_PUBLIC_URL": "https://broker.example.com",
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


CHECK_JSONSCHEMA = [sys.executable, "-m", "check_jsonschema"]


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validates_against_the_compose_spec() -> None:
    result = schema_check(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


BROKEN = [
    (lambda c: c["services"]["redis"].update(restart_policy="always"), "restart_policy"),
    (lambda c: c["services"]["broker-1"].update(cap_drop="ALL"), "cap_drop"),
    (lambda c: c.update(secret={"keyring": {"file": "k"}}), "secret"),
]


@pytest.mark.parametrize(("change", "expected"), BROKEN, ids=[e for _, e in BROKEN])
def test_a_broken_compose_file_fails_the_schema(tmp_path: Path, change: Any, expected: str) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    change(broken)
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = schema_check(path)
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout


def resolved(value: str) -> str:
    return INTERPOLATION.sub(lambda m: OPERATOR_ENV[m.group(1)], value)


def test_two_broker_replicas_built_from_the_dockerfile() -> None:
    assert len(BROKERS) >= 2
    for svc in BROKERS.values():
        context = (COMPOSE_FILE.parent / svc["build"]["context"]).resolve()
        assert (context / svc["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    published = [p.rsplit(":", 2) for svc in BROKERS.values() for p in svc["ports"]]
    assert len({host_port for _, host_port, _ in published}) == len(published)
    assert {target for *_, target in published} == {str(Settings.model_fields["port"].default)}


@pytest.mark.parametrize("name", sorted(BROKERS))
def test_a_broker_runs_read_only_without_privileges(name: str) -> None:
    svc = BROKERS[name]
    assert svc["read_only"] is True
    assert svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert any(t.split(":")[0] == "/tmp" for t in svc["tmpfs"])
    assert "volumes" not in svc  # the Redis store: nothing to keep on the broker's side


@pytest.mark.parametrize("name", sorted(BROKERS))
def test_a_broker_is_configured_by_variables_and_the_keyring_secret(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = BROKERS[name]["environment"]
    # the keyring: a file secret, mounted where BROKER_KEYRING_FILE points
    (secret,) = BROKERS[name]["secrets"]
    assert env["BROKER_KEYRING_FILE"] == f"/run/secrets/{secret}"
    source = DEPLOY / COMPOSE["secrets"][secret]["file"]
    assert source.parent == DEPLOY / "secrets"
    assert "secrets/" in (DEPLOY / ".gitignore").read_text().split()  # never committed
    # the admin token comes from the operator's environment, never a value in the file
    from_env = INTERPOLATION.fullmatch(env["BROKER_ADMIN_TOKEN"])
    assert from_env is not None and from_env.group(1) == "BROKER_ADMIN_TOKEN"
    # shared state in the compose file's Redis
    assert env["BROKER_STORE"].startswith("redis://redis:")
    settings = settings_from_env({k: resolved(v) for k, v in env.items()}, monkeypatch)
    assert settings.public_url == OPERATOR_ENV["BROKER_PUBLIC_URL"]


def test_redis_keeps_every_write_on_a_volume() -> None:
    redis = SERVICES["redis"]
    command: list[str] = redis["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "always"
    assert options["--maxmemory-policy"] == "noeviction"  # never evict a credential
    (volume,) = redis["volumes"]
    name, mount = volume.split(":")
    assert mount == options["--dir"]
    assert name in COMPOSE["volumes"]
    assert "ports" not in redis
    for svc in BROKERS.values():
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert set(redis["networks"]) <= set(svc["networks"])
    assert all(COMPOSE["networks"][n]["internal"] is True for n in redis["networks"])
