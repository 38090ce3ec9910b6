"""Paths and readers shared by the deploy/ tests."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OPERATIONS = ROOT / "docs" / "operations.md"

SETTING_NAME = re.compile(r"\bBROKER_[A-Z0-9_]*[A-Z0-9]\b")


# an operator's own files beside compose.yaml (git-ignored: deploy/.gitignore), not ours
LOCAL = ("secrets", ".env")


def deploy_files() -> list[Path]:
    """The files of deploy/, without an operator's keyring or .env."""
    return sorted(
        p for p in DEPLOY.rglob("*") if p.is_file() and p.relative_to(DEPLOY).parts[0] not in LOCAL
    )


def yaml_files() -> list[Path]:
    return [p for p in deploy_files() if p.suffix in (".yaml", ".yml")]


def load_all(path: Path) -> list[Any]:
    """Every document of a YAML file (empty documents dropped)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def load_one(path: Path) -> dict[str, Any]:
    docs = load_all(path)
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{path}: expected one mapping"
    return docs[0]


def setting_names() -> set[str]:
    """The environment variables `Settings` reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {prefix + name.upper() for name in Settings.model_fields}


def unknown_settings(text: str) -> set[str]:
    return set(SETTING_NAME.findall(text)) - setting_names()


def section(markdown: str, heading: str) -> str:
    """The text under a `## heading`, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    return match.group(1) if match else ""


def settings_from_env(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings read the way `broker serve` reads them, from exactly these variables."""
    for name in [n for n in os.environ if n.startswith("BROKER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()
