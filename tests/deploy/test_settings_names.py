"""Every BROKER_* variable that deploy/ (and the Deploying section of docs/operations.md)
names is a real setting, so a misspelt variable fails here instead of being ignored by a
running broker (Settings ignores unknown variables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.files import (
    DEPLOY,
    OPERATIONS,
    SETTING_NAME,
    deploy_files,
    section,
    unknown_settings,
)

DEPLOY_FILES = deploy_files()


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_deploy_files_name_only_real_settings(path: Path) -> None:
    assert unknown_settings(path.read_text(encoding="utf-8")) == set()


def test_the_deploying_docs_name_only_real_settings() -> None:
    text = section(OPERATIONS.read_text(encoding="utf-8"), "Deploying")
    assert SETTING_NAME.search(text), "the Deploying section names no setting"
    assert unknown_settings(text) == set()


def test_the_files_do_name_settings() -> None:
    named = set().union(*(SETTING_NAME.findall(p.read_text()) for p in DEPLOY_FILES))
    assert {"BROKER_STORE", "BROKER_KEYRING_FILE", "BROKER_ADMIN_TOKEN"} <= named


def test_a_typo_is_caught() -> None:
    text = "BROKER_STORE=redis://r:6379/0 BROKER_KEYRING_FILES=/k BROKER_PUBLICURL=x"
    assert unknown_settings(text) == {"BROKER_KEYRING_FILES", "BROKER_PUBLICURL"}
