"""deploy/Dockerfile: installs the project the way the README does, runs `broker serve` as a
non-root user, checks /healthz, exposes the default port. The image itself cannot be built
here (no registry for base images), so the file is read and checked instead."""

from __future__ import annotations

import tomllib
from collections.abc import Callable

import pytest

from broker.config import Settings
from tests.deploy import dockerfile as df
from tests.deploy.files import DEPLOY, ROOT, settings_from_env

DOCKERFILE = df.read(DEPLOY / "Dockerfile")
DEV = df.read(ROOT / "dev")
PYPROJECT = tomllib.loads(df.read(ROOT / "pyproject.toml"))
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])
DEFAULT_PORT = Settings.model_fields["port"].default
# what `pip install -e .` and the bundled catalog need from the build context
SOURCES = {"pyproject.toml", PYPROJECT["project"]["readme"], "broker", "connectors"}

CHECKS: dict[str, Callable[[str], list[str]]] = {
    "pip": lambda text: df.check_pip_installs(text, DEV, EXTRAS),
    "stages": lambda text: df.check_stages(text, SOURCES),
    "user": df.check_user,
    "entrypoint": df.check_entrypoint,
    "healthcheck": df.check_healthcheck,
    "expose": lambda text: df.check_expose(text, DEFAULT_PORT),
    "python": lambda text: df.check_python(text, PYPROJECT["project"]["requires-python"]),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_dockerfile_passes(name: str) -> None:
    assert CHECKS[name](DOCKERFILE) == []


def test_dev_installs_the_project_editable_with_the_test_extras() -> None:
    # what the Dockerfile is compared with: if ./dev changes how it installs, this says so
    project = [r for r in df.dev_installs(DEV) if r.target == "."]
    assert [(r.editable, r.extras) for r in project] == [(True, frozenset({"test"}))]


def replace(old: str, new: str) -> str:
    assert old in DOCKERFILE, old
    return DOCKERFILE.replace(old, new)


PIP_PROJECT = "/opt/venv/bin/python -m pip install -q -e ."


BROKEN = [
    ("pip", replace(PIP_PROJECT, PIP_PROJECT + " gunicorn"), "not installed by ./dev"),
    ("pip", replace(PIP_PROJECT, PIP_PROJECT + "[test]"), "test extras"),
    ("pip", replace("-q -e .", "-q ."), "editable"),
    ("pip", replace("-q -e .", "-q -e . --no-deps"), "--no-deps"),
    ("pip", replace("-q -e .", "-q -r requirements.txt"), "'-r'"),
    ("pip", replace(PIP_PROJECT, "true"), "installed once"),
    ("stages", replace("FROM ${PYTHON_IMAGE} AS runtime\n", ""), "multi-stage"),
    ("stages", replace("COPY --from=build /app /app", "COPY . /app"), "build context"),
    ("stages", replace("COPY connectors ./connectors\n", ""), "connectors"),
    ("user", replace("USER 10001:10001", "USER root"), "numeric"),
    ("user", replace("USER 10001:10001", "USER 0"), "root"),
    ("user", replace("USER 10001:10001\n", ""), "no USER"),
    ("entrypoint", replace('CMD ["serve"]', 'CMD ["serve", "--dev"]'), "not ['broker'"),
    ("entrypoint", replace('CMD ["serve"]', "CMD serve"), "exec form"),
    ("healthcheck", replace("/healthz", "/readyz"), "/healthz"),
    ("expose", replace("EXPOSE 8080", "EXPOSE 80"), "default"),
    ("expose", replace("BROKER_PORT=8080", "BROKER_PORT=9000"), "differs"),
    ("python", replace("python:3.11-slim", "python:3.10-slim"), "requires-python"),
]


@pytest.mark.parametrize(
    ("name", "broken", "expected"), BROKEN, ids=[f"{n}: {e}" for n, _, e in BROKEN]
)
def test_a_broken_dockerfile_is_caught(name: str, broken: str, expected: str) -> None:
    problems = CHECKS[name](broken)
    assert any(expected in p for p in problems), problems


def test_the_context_filter_lets_the_sources_in() -> None:
    ignore = df.read(DEPLOY / "Dockerfile.dockerignore")
    assert all(df.dockerignore_allows(ignore, source) for source in SOURCES)
    # and keeps the rest out: no local venv, keyring or dev data in the context
    for other in (".venv", "broker-data", "deploy/secrets/keyring.json", "tests"):
        assert not df.dockerignore_allows(ignore, other), other


def test_the_image_sets_only_what_a_container_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    env = df.env_of(df.stages(df.parse(DOCKERFILE))[-1])
    broker_env = {k: v for k, v in env.items() if k.startswith("BROKER_")}
    # listen beyond the container's loopback; keep the default SQLite file in a volume path;
    # keyring and admin token are never baked in
    assert broker_env == {
        "BROKER_HOST": "0.0.0.0",  # noqa: S104
        "BROKER_PORT": str(DEFAULT_PORT),
        "BROKER_STORE": "sqlite:////var/lib/broker/broker.db",
    }
    settings_from_env(broker_env, monkeypatch)  # valid values
    assert env["PATH"].startswith("/opt/venv/bin:")  # where the build stage installed broker
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # read-only root: no .pyc writes
